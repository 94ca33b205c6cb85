import { unlinkSync } from 'node:fs';
import type { Database } from 'better-sqlite3';
import { ClockSteps, wallNow } from '../clock.js';
import { migrate } from '../store/database.js';

export type OutboxState = 'queued' | 'uploading' | 'uploaded' | 'failed';

/** What the store hands the uplink: an age file on disk and what the gate needs to know about it. */
export interface OutboxEntry {
  objectId: string;
  path: string;
  bytes: number;
  kind: string;
  cameraId?: string;
}

export interface OutboxItem extends OutboxEntry {
  state: OutboxState;
  /** Attempts with a recorded outcome (aborts, gate holds and crashes do not count). */
  attempts: number;
  lastErrorCode: string | null;
  lastError: string | null;
  /** Epoch milliseconds. */
  nextAttemptAt: number;
  createdAt: number;
  updatedAt: number;
}

export interface OutboxStats {
  queued: number;
  uploading: number;
  uploaded: number;
  failed: number;
  /** Epoch milliseconds of the oldest `queued` or `uploading` item, null when there is none. */
  oldestQueuedAt: number | null;
}

/** An outcome's error as stored: a stable code (`CAMVEIL_E_…`, or `gate`) and a message without secrets. */
export interface OutboxError {
  code: string;
  message: string;
}

export const UPLINK_MODULE = 'uplink';

/**
 * The outbox's tables, as migration steps for `migrate(db, UPLINK_MODULE, OUTBOX_SCHEMA)` (append only).
 * Times are epoch ms; `next_attempt_at` is when a `queued` item becomes due; the index serves `nextDue`.
 */
export const OUTBOX_SCHEMA: readonly string[] = [
  `
CREATE TABLE uplink_outbox (
  object_id       TEXT PRIMARY KEY,
  path            TEXT NOT NULL,
  bytes           INTEGER NOT NULL CHECK (bytes >= 0),
  kind            TEXT NOT NULL,
  camera_id       TEXT,
  state           TEXT NOT NULL CHECK (state IN ('queued', 'uploading', 'uploaded', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_error_code TEXT,
  last_error      TEXT,
  next_attempt_at INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX uplink_outbox_due ON uplink_outbox (state, next_attempt_at);
`,
];

interface Row {
  object_id: string;
  path: string;
  bytes: number;
  kind: string;
  camera_id: string | null;
  state: OutboxState;
  attempts: number;
  last_error_code: string | null;
  last_error: string | null;
  next_attempt_at: number;
  created_at: number;
  updated_at: number;
}

function toItem(row: Row): OutboxItem {
  return {
    objectId: row.object_id,
    path: row.path,
    bytes: row.bytes,
    kind: row.kind,
    ...(row.camera_id === null ? {} : { cameraId: row.camera_id }),
    state: row.state,
    attempts: row.attempts,
    lastErrorCode: row.last_error_code,
    lastError: row.last_error,
    nextAttemptAt: row.next_attempt_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * The durable upload queue, in the hub's SQLite database: queued → uploading → uploaded | failed.
 *
 * A gate denial or an abort puts an item back to `queued` (with the reason in `last_error`), never to a
 * state of its own: whether it may go is decided afresh at each attempt. Opening an outbox returns items
 * a crash left `uploading` to `queued`, so one process must own the outbox of a database at a time.
 */
export class Outbox {
  readonly #db: Database;
  readonly #wall: () => number;
  /** Steps of the real clock; undefined when the caller gave its own `now`. */
  readonly #steps: ClockSteps | undefined;
  readonly #stepListeners = new Set<(step: { stepMs: number; moved: number }) => void>();

  /** `db` is the hub's database as openDatabase (src/store/database.ts) opens it; migrates the outbox's tables. */
  /**
   * `now` is wall time (src/clock.ts), since due times outlive the process. When absent, the real clock,
   * watched for steps: before each use a step moves every queued due time by as much (`followClock`).
   */
  constructor(db: Database, options: { now?: () => number } = {}) {
    this.#db = db;
    this.#wall = options.now ?? wallNow;
    this.#steps = options.now === undefined ? new ClockSteps() : undefined;
    migrate(db, UPLINK_MODULE, OUTBOX_SCHEMA);
    db.prepare(`UPDATE uplink_outbox SET state = 'queued', updated_at = ? WHERE state = 'uploading'`).run(this.#now());
  }

  /**
   * Moves every queued due time by the wall clock's step since the last look, if it stepped, and tells the
   * listeners: an upload due in 30 s stays due in 30 s when the clock is set back an hour, instead of
   * waiting the hour out. Runs before every use of the clock here, so nothing is written with the new clock
   * beside due times of the old one.
   */
  followClock(): void {
    const stepMs = this.#steps?.step() ?? 0;
    if (stepMs === 0) return;
    const moved = this.#db.prepare(`UPDATE uplink_outbox SET next_attempt_at = next_attempt_at + ? WHERE state = 'queued'`).run(stepMs).changes;
    for (const listener of this.#stepListeners) listener({ stepMs, moved });
  }

  /** `listener` is told of each step `followClock` finds; returns the function that stops telling it. */
  onClockStep(listener: (step: { stepMs: number; moved: number }) => void): () => void {
    this.#stepListeners.add(listener);
    return () => this.#stepListeners.delete(listener);
  }

  #now(): number {
    this.followClock();
    return this.#wall();
  }

  /** Adds an item, due now. Idempotent by object id: returns false (and changes nothing) when it is known. */
  enqueue(entry: OutboxEntry): boolean {
    const t = this.#now();
    const info = this.#db
      .prepare(
        `INSERT INTO uplink_outbox (object_id, path, bytes, kind, camera_id, state, next_attempt_at, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (object_id) DO NOTHING`,
      )
      .run(entry.objectId, entry.path, entry.bytes, entry.kind, entry.cameraId ?? null, t, t, t);
    return info.changes === 1;
  }

  get(objectId: string): OutboxItem | undefined {
    const row = this.#db.prepare(`SELECT * FROM uplink_outbox WHERE object_id = ?`).get(objectId) as Row | undefined;
    return row === undefined ? undefined : toItem(row);
  }

  /** The queued item that has been due longest at `now`, if any. */
  nextDue(now: number): OutboxItem | undefined {
    const row = this.#db
      .prepare(
        `SELECT * FROM uplink_outbox WHERE state = 'queued' AND next_attempt_at <= ?
         ORDER BY next_attempt_at, created_at LIMIT 1`,
      )
      .get(now) as Row | undefined;
    return row === undefined ? undefined : toItem(row);
  }

  /** When the earliest queued item becomes due (epoch ms), or null when nothing is queued. */
  nextWakeAt(): number | null {
    const row = this.#db.prepare(`SELECT MIN(next_attempt_at) AS t FROM uplink_outbox WHERE state = 'queued'`).get() as {
      t: number | null;
    };
    return row.t;
  }

  /**
   * The endpoint answers again: every queued item waiting out a backoff becomes due at `at` (when it was
   * due later), so the queue drains at once instead of item by item over up to the backoff cap. Items
   * the gate holds keep their recheck time (whether they may go is not the endpoint's business). Returns
   * how many were brought forward.
   */
  expediteQueued(at: number): number {
    return this.#db
      .prepare(
        `UPDATE uplink_outbox SET next_attempt_at = ?, updated_at = ?
         WHERE state = 'queued' AND next_attempt_at > ? AND last_error_code IS NOT NULL AND last_error_code <> 'gate'`,
      )
      .run(at, this.#now(), at).changes;
  }

  /**
   * The queued item that would be due first among those waiting out a failed attempt's backoff (not the
   * gate's holds): what a probe of the endpoint tries.
   */
  nextBackingOff(): OutboxItem | undefined {
    const row = this.#db
      .prepare(
        `SELECT * FROM uplink_outbox WHERE state = 'queued' AND last_error_code IS NOT NULL AND last_error_code <> 'gate'
         ORDER BY next_attempt_at, created_at LIMIT 1`,
      )
      .get() as Row | undefined;
    return row === undefined ? undefined : toItem(row);
  }

  markUploading(objectId: string): void {
    this.#transition(objectId, ['queued'], `state = 'uploading'`);
  }

  markUploaded(objectId: string): void {
    this.#transition(objectId, ['uploading'], `state = 'uploaded', attempts = attempts + 1, last_error_code = NULL, last_error = NULL`);
  }

  /** A permanent failure: the item stays on the hub, `failed`, and is not tried again. */
  markFailed(objectId: string, error: OutboxError): void {
    this.#transition(objectId, ['uploading', 'queued'], `state = 'failed', attempts = attempts + 1, last_error_code = ?, last_error = ?`, [
      error.code,
      error.message,
    ]);
  }

  /** A failed attempt that may succeed later: back to `queued`, due after `delayMs`. */
  retryLater(objectId: string, error: OutboxError, delayMs: number): void {
    this.#transition(
      objectId,
      ['uploading'],
      `state = 'queued', attempts = attempts + 1, last_error_code = ?, last_error = ?, next_attempt_at = ?`,
      [error.code, error.message, this.#now() + Math.max(0, Math.round(delayMs))],
    );
  }

  /**
   * Back to `queued` without counting an attempt: the gate said no (nothing was sent) or the upload was
   * aborted on request. Due again after `delayMs`.
   */
  release(objectId: string, error: OutboxError, delayMs = 0): void {
    this.#transition(objectId, ['uploading', 'queued'], `state = 'queued', last_error_code = ?, last_error = ?, next_attempt_at = ?`, [
      error.code,
      error.message,
      this.#now() + Math.max(0, Math.round(delayMs)),
    ]);
  }

  stats(): OutboxStats {
    const counts = this.#db.prepare(`SELECT state, COUNT(*) AS n FROM uplink_outbox GROUP BY state`).all() as Array<{
      state: OutboxState;
      n: number;
    }>;
    const stats: OutboxStats = { queued: 0, uploading: 0, uploaded: 0, failed: 0, oldestQueuedAt: null };
    for (const { state, n } of counts) stats[state] = n;
    const oldest = this.#db
      .prepare(`SELECT MIN(created_at) AS t FROM uplink_outbox WHERE state IN ('queued', 'uploading')`)
      .get() as { t: number | null };
    stats.oldestQueuedAt = oldest.t;
    return stats;
  }

  /**
   * Deletes every `queued` and `uploading` item and its file, and returns their ids (for local-only
   * mode: the files are age ciphertext for the household, so deleting them is crypto-shredding what
   * would have left the hub). Abort in-flight uploads first (Uploader.abortAll). A file already gone is
   * not an error; other unlink errors are thrown after the rows are deleted.
   */
  destroyQueued(): string[] {
    const rows = this.#db.transaction(() => {
      const found = this.#db.prepare(`SELECT object_id, path FROM uplink_outbox WHERE state IN ('queued', 'uploading')`).all() as Array<
        Pick<Row, 'object_id' | 'path'>
      >;
      this.#db.prepare(`DELETE FROM uplink_outbox WHERE state IN ('queued', 'uploading')`).run();
      return found;
    })();
    const problems: unknown[] = [];
    for (const row of rows) {
      try {
        unlinkSync(row.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(error);
      }
    }
    if (problems.length > 0) throw new AggregateError(problems, `outbox: ${problems.length} file(s) could not be deleted`);
    return rows.map((r) => r.object_id);
  }

  /**
   * Deletes one item and its file if it is still `queued` (a superseded object that must not go out);
   * returns whether it did. An item being uploaded is left alone: abort it, or wait for its outcome.
   */
  destroyIfQueued(objectId: string): boolean {
    const row = this.#db.prepare(`SELECT path FROM uplink_outbox WHERE object_id = ? AND state = 'queued'`).get(objectId) as Pick<Row, 'path'> | undefined;
    if (row === undefined) return false;
    this.#db.prepare(`DELETE FROM uplink_outbox WHERE object_id = ? AND state = 'queued'`).run(objectId);
    try {
      unlinkSync(row.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    return true;
  }

  /**
   * Deletes every `queued` item created before `cutoff` (epoch ms) and its file, and returns their ids: the
   * held queue's retention (uplink/local-only.ts). Items being uploaded are left alone; a file already gone is
   * not an error.
   */
  destroyQueuedBefore(cutoff: number): string[] {
    const rows = this.#db.transaction(() => {
      const found = this.#db.prepare(`SELECT object_id, path FROM uplink_outbox WHERE state = 'queued' AND created_at < ?`).all(cutoff) as Array<Pick<Row, 'object_id' | 'path'>>;
      this.#db.prepare(`DELETE FROM uplink_outbox WHERE state = 'queued' AND created_at < ?`).run(cutoff);
      return found;
    })();
    for (const row of rows) {
      try {
        unlinkSync(row.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    return rows.map((r) => r.object_id);
  }

  /** Ids of the objects the cloud holds (uploaded), for deletion requests. */
  uploadedIds(): string[] {
    return (this.#db.prepare(`SELECT object_id FROM uplink_outbox WHERE state = 'uploaded' ORDER BY created_at`).all() as Array<{ object_id: string }>).map(
      (r) => r.object_id,
    );
  }

  /** Forgets every row (after a data-subject deletion; queued ones must have been destroyed first). */
  forgetAll(): number {
    return this.#db.prepare(`DELETE FROM uplink_outbox WHERE state NOT IN ('queued', 'uploading')`).run().changes;
  }

  #transition(objectId: string, from: readonly OutboxState[], set: string, params: unknown[] = []): void {
    const placeholders = from.map(() => '?').join(', ');
    const info = this.#db
      .prepare(`UPDATE uplink_outbox SET ${set}, updated_at = ? WHERE object_id = ? AND state IN (${placeholders})`)
      .run(...params, this.#now(), objectId, ...from);
    if (info.changes !== 1) {
      const current = this.get(objectId);
      throw new Error(`outbox: ${objectId} is ${current === undefined ? 'unknown' : current.state}, not ${from.join(' or ')}`);
    }
  }
}
