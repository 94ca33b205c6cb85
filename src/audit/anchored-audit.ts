import type { KeyObject } from 'node:crypto';
import type Database from 'better-sqlite3';
import { rawPublicKeyOf } from '../crypto/hub-keys.js';
import { AuditAnchorWriter, readAuditAnchor, type AnchorCheck, type SignedAuditHead } from './audit-anchor.js';
import type { ExportTrailer } from './audit-export.js';
import { AuditLog, type AuditHead } from './audit-log.js';

/**
 * The hub's audit log with its anchor writer attached: every process that appends to the hub's log (the
 * service, the console commands, `camveil audit export`) opens it here, so none appends without anchoring
 * and every export signs the same trailer.
 */
export interface AnchoredAudit {
  readonly log: AuditLog;
  /** The anchor on disk checked against the chain at open; when not ok nothing is written (it is the evidence). */
  readonly checked: AnchorCheck;
  /** `head` signed by the hub now (the sealed state carries it). */
  signed(head: AuditHead): SignedAuditHead;
  /**
   * The trailer of an export (see ExportTrailer), for exportLines: call it before the first record is read.
   * It reads the anchor on disk then, so the records read afterwards always reach it (an anchor is only
   * written after its record committed); the returned function signs the head of what was exported.
   */
  exportTrailer(): (exported: AuditHead) => ExportTrailer;
  /**
   * Anchors the committed head now when appends since open may not be anchored yet: an append made inside
   * a caller's transaction is anchored on a later turn of the event loop, which never comes for a database
   * closed at once (a console command). Call it before closing the database. Never throws.
   */
  flush(): void;
}

export interface AnchoredAuditOptions {
  dataDir: string;
  signingKey: KeyObject;
  now?: () => Date;
  /** Told when the anchor could not be written; the record is committed all the same. */
  onError?: (error: unknown) => void;
}

/**
 * Opens the audit log on `db` with the anchor `<dataDir>/audit-head.json` kept at its committed head. The
 * anchor on disk is checked before anything is appended, so a rolled-back log cannot overwrite it.
 */
export function openAnchoredAudit(db: Database.Database, options: AnchoredAuditOptions): AnchoredAudit {
  const writer = new AuditAnchorWriter({
    dataDir: options.dataDir,
    signingKey: options.signingKey,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.onError === undefined ? {} : { onError: options.onError }),
  });
  let anchored: AuditHead | undefined;
  const log = new AuditLog(db, {
    ...(options.now === undefined ? {} : { now: options.now }),
    onAppend: (head) => {
      writer.record(head);
      anchored = head;
    },
  });
  const checked = writer.check(log);
  const opened = log.head();
  const hubKey = rawPublicKeyOf(options.signingKey);
  return {
    log,
    checked,
    signed: (head) => writer.signed(head),
    exportTrailer: () => {
      const anchor = anchorOnDisk(options.dataDir);
      return (exported) => ({ anchor, exported: writer.signed(exported), hubKey });
    },
    flush: () => {
      if (!db.open || db.inTransaction) return;
      const head = log.head();
      const last = anchored ?? opened;
      if (head.seq !== last.seq || head.hash !== last.hash) writer.record(head);
    },
  };
}

/** The anchor as found, or null when there is none or it is unreadable (the open-time check says why). */
function anchorOnDisk(dataDir: string): SignedAuditHead | null {
  try {
    return readAuditAnchor(dataDir) ?? null;
  } catch {
    return null;
  }
}
