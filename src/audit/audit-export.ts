import { canonicalJson } from './canonical.js';
import { GENESIS_HASH, type AuditEntry, type AuditHead, type AuditLog } from './audit-log.js';
import type { SignedAuditHead } from './audit-anchor.js';

/** One exported record: `canonicalJson({seq, at, type, details, prevHash, hash})` and a newline. */
export function exportLine(entry: AuditEntry): string {
  return `${canonicalJson({ ...entry })}\n`;
}

/**
 * The last line of `camveil audit export`: `exported` is the hub's signature over the last exported record
 * (seq and hash: the export is complete and this hub's), `anchor` the signed head the hub had anchored on
 * disk (the export must contain it, else the log was rolled back; null before anchoring), `hubKey` the raw
 * Ed25519 public key they verify with (compare it with the one the app pinned: it proves nothing alone).
 */
export interface ExportTrailer {
  anchor: SignedAuditHead | null;
  exported: SignedAuditHead;
  hubKey: string;
}

/**
 * The whole log as JSON-lines chunks, counting as it goes (for the export's own audit record). With
 * `trailer`, one more line after the records: what it returns for the head of what was exported (the
 * genesis head for an empty log).
 */
export function* exportLines(log: AuditLog, counter: { count: number }, trailer?: (exported: AuditHead) => ExportTrailer): Generator<Buffer> {
  let last: AuditHead = { seq: 0, hash: GENESIS_HASH };
  for (const entry of log.iterate()) {
    counter.count += 1;
    last = { seq: entry.seq, hash: entry.hash };
    yield Buffer.from(exportLine(entry), 'utf8');
  }
  if (trailer !== undefined) yield Buffer.from(`${JSON.stringify(trailer(last))}\n`, 'utf8');
}
