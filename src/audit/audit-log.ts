import { createHash } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { CamveilError } from '../errors.js';
import { migrate } from '../store/database.js';
import { auditDetailProblems, type AuditDetails, type AuditType } from './audit-types.js';
import { canonicalJson, type JsonValue } from './canonical.js';

/** `prev_hash` of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The table, and triggers that make accidental UPDATE/DELETE through camveil fail. The triggers do not
 * stop someone with the database file (they can drop them); the hash chain is what detects that.
 */
export const AUDIT_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  type TEXT NOT NULL,
  record TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`;

/** One record as stored: `record` is `canonicalJson({seq, at, type, details})`. */
export interface AuditEntry {
  seq: number;
  at: string;
  type: string;
  details: JsonValue;
  prevHash: string;
  hash: string;
}

/** The last record's seq and hash (seq 0 and the genesis hash for an empty log). */
export interface AuditHead {
  seq: number;
  hash: string;
}

export type AuditVerifyResult = { ok: true; count: number; head: AuditHead } | { ok: false; brokenAt: number; reason: string };

interface AuditRow {
  seq: number;
  at: string;
  type: string;
  record: string;
  prev_hash: string;
  hash: string;
}

/** SHA-256 hex of `prevHash || '\n' || record`: the link of the chain. */
export function chainHash(prevHash: string, record: string): string {
  return createHash('sha256').update(`${prevHash}\n${record}`, 'utf8').digest('hex');
}

const PAGE = 500;

/**
 * The append-only, hash-chained audit log in table `audit` of a better-sqlite3 database.
 *
 * Each record's hash covers the previous hash and the canonical JSON of `{seq, at, type, details}`, so
 * editing, reordering or removing a record in the middle breaks the chain at that record. Removing the
 * newest records (truncation) leaves a valid, shorter chain: that is detected only against a head seen
 * before, which is why `head()` exists — the gateway publishes it in its retained state, and
 * `verify(previousHead)` checks the chain still contains it.
 *
 * There is deliberately no way to remove records: deleting personal data keeps the audit trail of the
 * deletion itself (which holds no personal data).
 */
export class AuditLog {
  readonly #db: Database;
  readonly #now: () => Date;
  readonly #onAppend: ((head: AuditHead) => void) | undefined;
  #notifyPending = false;

  /**
   * Creates the table if needed, through store's `migrate` (module `audit`) when the database has
   * `schema_versions`. Not on a read-only connection: there a log without the table reads as empty.
   *
   * `onAppend` is told the committed head after appends (the anchor writer, audit-anchor.ts): at once for an
   * append that committed, and for one made inside a caller's transaction only after that transaction ended
   * (from setImmediate, reading the head again), so it never hears of a record that may still be rolled back.
   */
  constructor(db: Database, options: { now?: () => Date; onAppend?: (head: AuditHead) => void } = {}) {
    this.#db = db;
    this.#now = options.now ?? (() => new Date());
    this.#onAppend = options.onAppend;
    if (db.readonly) return;
    // A database from store/openDatabase records module versions; a bare one (tests, tools) does not.
    if (this.#hasTable('schema_versions')) migrate(db, 'audit', [AUDIT_SCHEMA_SQL]);
    else db.exec(AUDIT_SCHEMA_SQL);
  }

  #hasTable(name = 'audit'): boolean {
    return this.#db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
  }

  /**
   * Appends one record. Reading the head and inserting happen in one IMMEDIATE transaction, so writers
   * on other connections (other processes) wait for each other and the chain stays linear.
   *
   * @throws CamveilError `CAMVEIL_E_AUDIT_DETAILS_INVALID` listing every problem as `path: reason`
   * (values are never quoted) when the details are not allowed for the type; nothing is appended.
   */
  append<T extends AuditType>(type: T, details: AuditDetails<T>): AuditEntry {
    const problems = auditDetailProblems(type, details);
    if (problems.length > 0) {
      throw new CamveilError('CAMVEIL_E_AUDIT_DETAILS_INVALID', `audit ${type}: ${problems.join('; ')}`, { where: 'audit' });
    }
    const plain = JSON.parse(canonicalJson(details)) as JsonValue;
    const insert = this.#db.transaction((): AuditEntry => {
      const last = this.#db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as AuditHead | undefined;
      const seq = (last?.seq ?? 0) + 1;
      const prevHash = last?.hash ?? GENESIS_HASH;
      const at = this.#now().toISOString();
      const record = canonicalJson({ seq, at, type, details: plain });
      const hash = chainHash(prevHash, record);
      this.#db
        .prepare('INSERT INTO audit (seq, at, type, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)')
        .run(seq, at, type, record, prevHash, hash);
      return { seq, at, type, details: plain, prevHash, hash };
    });
    const entry = insert.immediate();
    this.#notify(entry);
    return entry;
  }

  #notify(entry: AuditEntry): void {
    const onAppend = this.#onAppend;
    if (onAppend === undefined) return;
    if (!this.#db.inTransaction) {
      onAppend({ seq: entry.seq, hash: entry.hash });
      return;
    }
    // Nested in a caller's transaction: better-sqlite3 transactions are synchronous, so it has committed or
    // rolled back by the next turn of the event loop; what is committed then is read afresh.
    if (this.#notifyPending) return;
    this.#notifyPending = true;
    const later = (): void => {
      if (!this.#db.open) return;
      if (this.#db.inTransaction) {
        setImmediate(later);
        return;
      }
      this.#notifyPending = false;
      onAppend(this.head());
    };
    setImmediate(later);
  }

  /** The newest record's seq and hash; `{seq: 0, hash: GENESIS_HASH}` when the log is empty. */
  head(): AuditHead {
    if (!this.#hasTable()) return { seq: 0, hash: GENESIS_HASH };
    const last = this.#db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as AuditHead | undefined;
    return last ?? { seq: 0, hash: GENESIS_HASH };
  }

  /** Records in seq order from `fromSeq` (default 1), at most `limit` (default and maximum 10 000). */
  entries(options: { fromSeq?: number; limit?: number } = {}): AuditEntry[] {
    if (!this.#hasTable()) return [];
    const limit = Math.min(Math.max(Math.trunc(options.limit ?? 10_000), 0), 10_000);
    const rows = this.#db
      .prepare('SELECT seq, at, type, record, prev_hash, hash FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?')
      .all(options.fromSeq ?? 1, limit) as AuditRow[];
    return rows.map(toEntry);
  }

  /** Every record in seq order, read a page at a time (for export). */
  *iterate(): Generator<AuditEntry> {
    let from = 1;
    for (;;) {
      const page = this.entries({ fromSeq: from, limit: PAGE });
      yield* page;
      const last = page.at(-1);
      if (page.length < PAGE || last === undefined) return;
      from = last.seq + 1;
    }
  }

  /**
   * Walks the whole chain, recomputing every hash, and reports the first broken record: a missing seq
   * (a deleted row), a `prev_hash` that is not the previous record's hash (reordered or replaced rows),
   * a record that does not match its columns or is not canonical, or a wrong hash (edited record).
   *
   * With `anchor` (a head seen earlier), also checks that the chain still reaches it with the same hash:
   * this is what detects a truncated tail.
   */
  verify(anchor?: AuditHead): AuditVerifyResult {
    let expected = 1;
    let prevHash = GENESIS_HASH;
    if (this.#hasTable()) {
      let from = 1;
      for (;;) {
        const rows = this.#db
          .prepare('SELECT seq, at, type, record, prev_hash, hash FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?')
          .all(from, PAGE) as AuditRow[];
        for (const row of rows) {
          if (row.seq !== expected) return broken(expected, `record ${expected} is missing (next is ${row.seq})`);
          const problem = rowProblem(row, prevHash);
          if (problem !== null) return broken(row.seq, problem);
          if (anchor !== undefined && row.seq === anchor.seq && row.hash !== anchor.hash) {
            return broken(row.seq, 'hash differs from the previously seen head');
          }
          prevHash = row.hash;
          expected += 1;
        }
        if (rows.length < PAGE) break;
        from = expected;
      }
    }
    const count = expected - 1;
    if (anchor !== undefined && anchor.seq > count) {
      return broken(count + 1, `log ends at record ${count} but record ${anchor.seq} was seen before (truncated)`);
    }
    return { ok: true, count, head: { seq: count, hash: prevHash } };
  }
}

function broken(brokenAt: number, reason: string): AuditVerifyResult {
  return { ok: false, brokenAt, reason };
}

/** Why a row does not link to `prevHash` or does not hash to itself; null when it is sound. */
function rowProblem(row: AuditRow, prevHash: string): string | null {
  if (row.prev_hash !== prevHash) return `prev_hash does not match the hash of record ${row.seq - 1}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.record);
  } catch {
    return 'record is not valid JSON';
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'record is not a JSON object';
  const { seq, at, type, details, ...rest } = parsed as Record<string, unknown>;
  if (Object.keys(rest).length > 0 || details === undefined) return 'record does not have exactly seq, at, type, details';
  if (seq !== row.seq || at !== row.at || type !== row.type) return 'record does not match its seq, at or type column';
  let canonical: string;
  try {
    canonical = canonicalJson(parsed);
  } catch {
    return 'record is not canonical JSON';
  }
  if (canonical !== row.record) return 'record is not canonical JSON';
  if (chainHash(prevHash, row.record) !== row.hash) return 'hash does not match the record';
  return null;
}

/** A row as an entry; a record that no longer parses (tampering) reads with `details: null`. */
function toEntry(row: AuditRow): AuditEntry {
  let details: JsonValue = null;
  try {
    details = (JSON.parse(row.record) as { details?: JsonValue }).details ?? null;
  } catch {
    // verify() reports this record as broken; the entry is still listed so an export shows it.
  }
  return { seq: row.seq, at: row.at, type: row.type, details, prevHash: row.prev_hash, hash: row.hash };
}
