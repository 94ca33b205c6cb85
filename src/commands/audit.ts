import { createWriteStream, existsSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { exportLine, exportLines } from '../audit/audit-export.js';
import { AuditLog } from '../audit/audit-log.js';
import { encryptStream } from '../crypto/age-stream.js';
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

/**
 * `camveil audit verify [--data-dir DIR]`: walks the hash chain of `<dataDir>/camveil.db`, opened
 * read-only. Prints `audit log intact: N records, head <seq> <hash-prefix>` and returns 0, or
 * `audit log broken at record <seq>: <reason>` (stderr) and returns 1; 2 when the database is missing.
 *
 * A truncated tail is a valid chain: compare the printed head with the one the gateway published.
 */
export function runAuditVerify(opts: { dataDir: string }, io: CommandIO): Promise<number> {
  const file = databasePath(opts.dataDir);
  if (file instanceof CamveilError) return Promise.resolve(report(io, file));
  let db: Database.Database | undefined;
  try {
    // An empty file opens as an empty database, whose "chain" would verify as intact with 0 records.
    if (statSync(file).size === 0) throw new CamveilError('CAMVEIL_E_STORE_CORRUPT', `${file} is empty: the audit log is lost, nothing to verify`, { where: file });
    db = new Database(file, { readonly: true, fileMustExist: true });
    const result = new AuditLog(db).verify();
    if (!result.ok) {
      io.stderr(`audit log broken at record ${result.brokenAt}: ${result.reason}`);
      return Promise.resolve(1);
    }
    io.stdout(`audit log intact: ${result.count} records, head ${result.head.seq} ${result.head.hash.slice(0, HASH_PREFIX)}`);
    return Promise.resolve(0);
  } catch (error) {
    return Promise.resolve(report(io, error instanceof Database.SqliteError ? unreadableDatabase(file, error) : error));
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
 * One JSON line per record: canonicalJson({seq, at, type, details, prevHash, hash}). A reader re-checks
 * the chain with hash = SHA-256(prevHash || '\n' || canonicalJson({seq, at, type, details})).
 */
export { exportLine };

/**
 * `camveil audit export --recipient R… [--out FILE]`: the whole log as JSON lines (see exportLine),
 * age-encrypted to `recipients`, streamed to `out` or to `output` (stdout). Plaintext never touches the
 * disk: the file is written as ciphertext to `<out>.partial` (mode 0600) and renamed when complete.
 *
 * The export itself is then recorded in the log (type `export`, scope `audit`). A broken chain is still
 * exported (it is the evidence), with a warning on stderr and exit code 1.
 *
 * @returns 0; 1 when the chain is broken or writing fails; 2 for a missing database, bad recipients, or
 * ciphertext to a terminal.
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
    const db = openDatabase(opts.dataDir);
    try {
      const log = new AuditLog(db);
      const verdict = log.verify();
      const counter = { count: 0 };
      const ciphertext = encryptStream(recipients, exportLines(log, counter));
      if (opts.out === undefined) {
        await pipeline(ciphertext, output, { end: output !== process.stdout });
      } else {
        await writeFileAtomically(opts.out, ciphertext);
      }
      log.append('export', { scope: 'audit', count: counter.count, recipients: recipients.length });
      io.stderr(`exported ${counter.count} audit records to ${opts.out ?? 'stdout'}, encrypted to ${recipients.length} recipient(s)`);
      if (!verdict.ok) {
        io.stderr(`warning: audit log broken at record ${verdict.brokenAt}: ${verdict.reason}`);
        return 1;
      }
      return 0;
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
