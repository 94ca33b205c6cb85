import { canonicalJson } from './canonical.js';
import type { AuditEntry, AuditLog } from './audit-log.js';

/** One exported record: `canonicalJson({seq, at, type, details, prevHash, hash})` and a newline. */
export function exportLine(entry: AuditEntry): string {
  return `${canonicalJson({ ...entry })}\n`;
}

/** The whole log as JSON-lines chunks, counting as it goes (for the export's own audit record). */
export function* exportLines(log: AuditLog, counter: { count: number }): Generator<Buffer> {
  for (const entry of log.iterate()) {
    counter.count += 1;
    yield Buffer.from(exportLine(entry), 'utf8');
  }
}
