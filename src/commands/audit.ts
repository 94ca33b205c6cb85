import { createWriteStream, existsSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import type { KeyObject } from 'node:crypto';
import { AUDIT_ANCHOR_FILE, auditHeadSignatureValid, headContradiction, readAuditAnchor } from '../audit/audit-anchor.js';
import { openAnchoredAudit } from '../audit/anchored-audit.js';
import { exportLine, exportLines } from '../audit/audit-export.js';
import { AuditLog, type AuditHead } from '../audit/audit-log.js';
import { encryptStream } from '../crypto/age-stream.js';
import { HUB_SIGNING_KEY_FILE, readSigningKey } from '../crypto/hub-keys.js';
import { parseRecipients } from '../crypto/recipients.js';
import { CamveilError, exitCodeFor } from '../errors.js';
import { DATABASE_FILE, openDatabase } from '../store/database.js';
import type { CommandIO } from './io.js';

/** Characters of the head hash shown by `audit verify`: enough to compare by eye with the published head. */
const HASH_PREFIX = 16;

function databasePath(dataDir: string): string | CamveilError {
  const file = join(dataDir, DATABASE_FILE);
  if (!existsSync(file)) {
    return new CamveilError('CAMVEIL_E_AUDIT_MISSING', `no audit database at ${file}`, { where: file });
  }
  return file;
}

function report(io: CommandIO, error: unknown): number {
  if (!(error instanceof CamveilError)) throw error;
  io.stderr(`${error.code}: ${error.message}`);
  return error.code === 'CAMVEIL_E_AUDIT_MISSING' ? 2 : exitCodeFor(error);
}

/** `--head SEQ:HASH`: a head the user kept (from the app, or an earlier verify or export). */
export function parseHeadOption(text: string): AuditHead {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim());
  if (match === null) throw new CamveilError('CAMVEIL_E_USAGE', '--head must be SEQ:HASH (the record number and its 64-hex-character hash)', { where: '--head' });
  return { seq: Number(match[1]), hash: match[2]! };
}

/** The hub's signing key in `<dataDir>/keys/`, read through the same checks as at start. */
function hubSigningKey(dataDir: string): Promise<KeyObject> {
  return readSigningKey(join(dataDir, 'keys', HUB_SIGNING_KEY_FILE));
}

function rolledBack(what: string, contradiction: string): CamveilError {
  return new CamveilError('CAMVEIL_E_AUDIT_ROLLBACK', `audit log rolled back: ${what} but ${contradiction}`, { where: 'audit' });
}

/**
 * `camveil audit verify [--data-dir DIR] [--head SEQ:HASH]`: walks the hash chain of `<dataDir>/camveil.db`,
 * opened read-only, then checks it still reaches the hub's signed anchor (`<dataDir>/audit-head.json`, signed
 * by `keys/hub-signing-key.pem`) and the head given with `--head`.
 *
 * Prints `audit log intact: N records, head <seq> <hash-prefix>` (and the anchor's seq and time) and returns 0;
 * `audit log broken at record <seq>: <reason>` (stderr) and 1 for a broken chain;
 * `CAMVEIL_E_AUDIT_ROLLBACK: audit log rolled back: anchor at <seq> but …` and 1 when the chain ends before the
 * anchor or holds another record at its seq; `CAMVEIL_E_AUDIT_ANCHOR_INVALID` naming the file and 1 when the
 * anchor is malformed or not signed by the hub; 2 when the database is missing or `--head` is malformed.
 * A non-empty log without an anchor (a hub from before anchoring) verifies with a warning on stderr.
 */
export async function runAuditVerify(opts: { dataDir: string; head?: string }, io: CommandIO): Promise<number> {
  let kept: AuditHead | undefined;
  try {
    kept = opts.head === undefined ? undefined : parseHeadOption(opts.head);
  } catch (error) {
    return report(io, error);
  }
  const file = databasePath(opts.dataDir);
  if (file instanceof CamveilError) return report(io, file);
  let db: Database.Database | undefined;
  try {
    // An empty file opens as an empty database, whose "chain" would verify as intact with 0 records.
    if (statSync(file).size === 0) throw new CamveilError('CAMVEIL_E_STORE_CORRUPT', `${file} is empty: the audit log is lost, nothing to verify`, { where: file });
    db = new Database(file, { readonly: true, fileMustExist: true });
    const log = new AuditLog(db);
    const result = log.verify();
    if (!result.ok) {
      io.stderr(`audit log broken at record ${result.brokenAt}: ${result.reason}`);
      return 1;
    }
    const anchor = readAuditAnchor(opts.dataDir);
    if (anchor !== undefined) {
      const key = await hubSigningKey(opts.dataDir);
      const anchorFile = join(opts.dataDir, AUDIT_ANCHOR_FILE);
      if (!auditHeadSignatureValid(anchor, key)) {
        throw new CamveilError('CAMVEIL_E_AUDIT_ANCHOR_INVALID', `audit anchor ${anchorFile} is not signed by the hub key ${HUB_SIGNING_KEY_FILE}`, { where: anchorFile });
      }
      const contradiction = headContradiction(log, anchor.head, result.count);
      if (contradiction !== undefined) throw rolledBack(`anchor at ${anchor.head.seq}`, contradiction);
    } else if (result.count > 0) {
      io.stderr(`warning: no audit anchor (${AUDIT_ANCHOR_FILE}) in ${opts.dataDir}: a cut or rolled-back tail cannot be detected here; compare the head with one kept earlier (--head)`);
    }
    if (kept !== undefined) {
      const contradiction = headContradiction(log, kept, result.count);
      if (contradiction !== undefined) throw rolledBack(`head ${kept.seq} given with --head`, contradiction);
    }
    io.stdout(`audit log intact: ${result.count} records, head ${result.head.seq} ${result.head.hash.slice(0, HASH_PREFIX)}`);
    if (anchor !== undefined) io.stdout(`anchor: record ${anchor.head.seq}, signed by the hub at ${anchor.head.at}`);
    return 0;
  } catch (error) {
    return report(io, error instanceof Database.SqliteError ? unreadableDatabase(file, error) : error);
  } finally {
    db?.close();
  }
}

/**
 * A file SQLite cannot read at all (not a database, a malformed page) is a damaged store
 * (`CAMVEIL_E_STORE_CORRUPT`, exit 1), not an internal error, and no verdict on the chain.
 */
function unreadableDatabase(file: string, error: InstanceType<typeof Database.SqliteError>): CamveilError {
  return new CamveilError('CAMVEIL_E_STORE_CORRUPT', `${file} cannot be read as a database (${error.code}: ${error.message}): the audit log cannot be verified`, {
    where: file,
    cause: error,
  });
}

/**
 * One JSON line per record: `canonicalJson({seq, at, type, details, prevHash, hash})`. A reader re-checks
 * the chain with `hash = SHA-256(prevHash || '\n' || canonicalJson({seq, at, type, details}))`.
 */
export { exportLine };

/**
 * `camveil audit export --recipient R… [--out FILE]`: the whole log as JSON lines (see exportLine), then one
 * line `{"anchor", "exported", "hubKey"}` (see ExportTrailer) with the hub's signed heads, age-encrypted to
 * `recipients`, streamed to `out` or to `output` (stdout). Plaintext never touches the disk: the file is
 * written as ciphertext to `<out>.partial` (mode 0600) and renamed when complete.
 *
 * The export itself is then recorded in the log (type `export`, scope `audit`) and anchored. A broken chain,
 * or one that no longer reaches the hub's anchor, is still exported (it is the evidence), with a warning on
 * stderr and exit code 1; the anchor on disk is then left as it is.
 *
 * @returns 0; 1 when the chain is broken or rolled back, or writing fails; 2 for a missing database, bad
 * recipients, or ciphertext to a terminal.
 */
export async function runAuditExport(
  opts: { dataDir: string; recipients: string[]; out?: string },
  io: CommandIO,
  output: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): Promise<number> {
  try {
    const recipients = parseRecipients(opts.recipients, 'recipients');
    if (opts.out === undefined && output.isTTY === true) {
      throw new CamveilError('CAMVEIL_E_USAGE', 'refusing to write ciphertext to a terminal: use --out FILE or redirect stdout');
    }
    const file = databasePath(opts.dataDir);
    if (file instanceof CamveilError) throw file;
    const signingKey = await hubSigningKey(opts.dataDir);
    const db = openDatabase(opts.dataDir);
    try {
      // The same anchored log, and so the same trailer, as the service's and the MQTT audit/export's.
      const audit = openAnchoredAudit(db, {
        dataDir: opts.dataDir,
        signingKey,
        onError: (error) => io.stderr(`warning: audit anchor not written: ${error instanceof Error ? error.message : String(error)}`),
      });
      const log = audit.log;
      const verdict = log.verify();
      const anchored = audit.checked;
      const counter = { count: 0 };
      const ciphertext = encryptStream(recipients, exportLines(log, counter, audit.exportTrailer()));
      if (opts.out === undefined) {
        await pipeline(ciphertext, output, { end: output !== process.stdout });
      } else {
        await writeFileAtomically(opts.out, ciphertext);
      }
      log.append('export', { scope: 'audit', count: counter.count, recipients: recipients.length });
      io.stderr(`exported ${counter.count} audit records to ${opts.out ?? 'stdout'}, encrypted to ${recipients.length} recipient(s)`);
      let code = 0;
      if (!verdict.ok) {
        io.stderr(`warning: audit log broken at record ${verdict.brokenAt}: ${verdict.reason}`);
        code = 1;
      }
      if (!anchored.ok) {
        io.stderr(`warning: ${anchored.reason}`);
        code = 1;
      }
      return code;
    } finally {
      db.close();
    }
  } catch (error) {
    return report(io, error);
  }
}

async function writeFileAtomically(path: string, ciphertext: NodeJS.ReadableStream): Promise<void> {
  const partial = `${path}.partial`;
  try {
    await pipeline(ciphertext, createWriteStream(partial, { mode: 0o600, flags: 'wx' }));
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw new CamveilError('CAMVEIL_E_INTERNAL', `cannot write ${path}: ${error instanceof Error ? error.message : String(error)}`, {
      where: path,
      cause: error,
    });
  }
}
