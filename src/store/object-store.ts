import { createReadStream, existsSync, mkdirSync, rmSync, statfsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import { monotonicMs } from '../clock.js';
import { OBJECT_ID_PATTERN } from '../crypto/manifest.js';
import { CamveilError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ObjectKind } from '../policy/vocabulary.js';
import { syncDirectory, writeCiphertextFile } from './ciphertext-file.js';
import { migrate } from './database.js';
import { EventIndex, type EventQuery, type StoredEvent } from './events.js';
import { AGE_SUFFIX, recoverObjects, type RecoveryReport, TMP_SUFFIX } from './recovery.js';
import { applyRetention, type RetentionOptions } from './retention.js';
import { STORE_MODULE, STORE_SCHEMA } from './schema.js';

export const OBJECTS_DIR = 'objects';

/** Write failures the store has already logged (once per burst): callers need not log them again. */
const REPORTED = new WeakSet<object>();

/** Whether `error` is a store write failure the store has already reported. */
export function isReportedWriteFailure(error: unknown): boolean {
  return typeof error === 'object' && error !== null && REPORTED.has(error);
}

export interface PutInput {
  objectId: string;
  kind: ObjectKind;
  cameraId?: string;
  eventId?: string;
  /** Epoch milliseconds. */
  capturedAt: number;
  /** An age file, as a stream of bytes. */
  body: Readable;
  /**
   * What must commit together with the object (its upload queued, see StagedUploads). Called once the file
   * is in place under its final name; returns the step to run inside the object's own transaction, so a crash
   * leaves both or neither, and `abandon` for a put that fails after it (to remove what it prepared).
   */
  alongside?: (file: { path: string; bytes: number }) => Promise<AlongsideCommit | undefined>;
}

/** See PutInput.alongside. */
export interface AlongsideCommit {
  /** Runs inside the transaction that indexes the object; a throw rolls both back and fails the put. */
  inTransaction(): void;
  abandon(): void;
}

export interface StoredObject {
  objectId: string;
  kind: ObjectKind;
  cameraId?: string;
  eventId?: string;
  /** Epoch milliseconds. */
  capturedAt: number;
  storedAt: number;
  bytes: number;
  /** `<dataDir>/objects/<objectId>.age` */
  path: string;
}

export interface ObjectQuery {
  kind?: ObjectKind;
  cameraId?: string;
  /** Only objects captured strictly before this time (epoch ms). */
  before?: number;
  /** 100 when absent. */
  limit?: number;
  /**
   * By capture time (newest first when absent), or `stored`: in the order the objects were stored, first
   * stored first. Capture times are wall time and a step of the clock re-orders them; the order of storing
   * (the table's rowid) never goes back, so quota eviction uses it.
   */
  order?: 'newest' | 'oldest' | 'stored';
}

export type { RecoveryReport } from './recovery.js';

export interface ObjectStoreOptions {
  db: Database.Database;
  dataDir: string;
  logger: Logger;
  now?: () => number;
  /**
   * When set, `put` keeps the store within `quotaBytes`: before committing a new object it applies retention
   * with the quota lowered by the object's size, so the objects stored first make room and the new one is
   * never the one evicted. A body larger than the whole quota is refused while it streams.
   */
  retention?: RetentionOptions;
}

interface ObjectRow {
  object_id: string;
  kind: ObjectKind;
  camera_id: string | null;
  event_id: string | null;
  captured_at: number;
  stored_at: number;
  bytes: number;
}

/**
 * Encrypted objects on the hub: one age file per object under `<dataDir>/objects/`, indexed in SQLite. It
 * only ever receives ciphertext and refuses anything that does not start like an age file. A file is
 * fsynced and renamed into place before its row commits, so a committed row always has a complete file;
 * `recover()` (run by `open`) removes what a crash left half-done.
 */
export class ObjectStore {
  readonly dir: string;
  readonly #db: Database.Database;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #retention: RetentionOptions | undefined;
  readonly #events: EventIndex;
  /** Ids being written: their `.tmp` or not-yet-indexed `.age` files belong to a live `put`. */
  readonly #writing = new Set<string>();
  /** The write failures since the last write that succeeded: reported once per burst, not per object. */
  #failing: { count: number; since: number; code: string | undefined } | undefined;
  /** When the failures began, on elapsed time: `since` is wall time for the state, this times the burst. */
  #failingElapsed = 0;
  #lastRecovery: RecoveryReport | undefined;

  private constructor(options: ObjectStoreOptions) {
    this.dir = join(options.dataDir, OBJECTS_DIR);
    this.#db = options.db;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#retention = options.retention;
    this.#events = new EventIndex(options.db);
  }

  /** Migrates the store's tables, creates the objects directory (0700) and runs `recover()`. */
  static open(options: ObjectStoreOptions): ObjectStore {
    migrate(options.db, STORE_MODULE, STORE_SCHEMA);
    mkdirSync(join(options.dataDir, OBJECTS_DIR), { recursive: true, mode: 0o700 });
    const store = new ObjectStore(options);
    store.recover();
    return store;
  }

  /**
   * Streams an age file into the store and indexes it. Resolves once file, directory entry and row are all
   * durable; on any failure nothing is left behind (no file, no row) and the body is destroyed.
   *
   * @throws CamveilError `CAMVEIL_E_STORE_NOT_CIPHERTEXT`, `CAMVEIL_E_STORE_QUOTA`, `CAMVEIL_E_STORE_WRITE_FAILED`.
   */
  async put(input: PutInput): Promise<StoredObject> {
    const { objectId } = input;
    if (!OBJECT_ID_PATTERN.test(objectId) || this.#writing.has(objectId) || this.get(objectId) !== undefined) {
      input.body.destroy();
      throw new CamveilError('CAMVEIL_E_STORE_WRITE_FAILED', `object ${objectId} is not a valid new object id`, { where: objectId });
    }
    this.#writing.add(objectId);
    const tmp = join(this.dir, objectId + TMP_SUFFIX);
    const final = this.pathOf(objectId);
    try {
      const stored = await this.#write(input, tmp, final);
      this.#writeSucceeded();
      return stored;
    } catch (error) {
      if (error instanceof CamveilError && error.code === 'CAMVEIL_E_STORE_WRITE_FAILED') this.#writeFailed(error);
      throw error;
    } finally {
      this.#writing.delete(objectId);
    }
  }

  async #write(input: PutInput, tmp: string, final: string): Promise<StoredObject> {
    const { objectId } = input;
    const bytes = await writeCiphertextFile(input.body, tmp, objectId, this.#retention?.quotaBytes ?? Number.MAX_SAFE_INTEGER);
    try {
      await rename(tmp, final);
      await syncDirectory(this.dir);
    } catch (error) {
      await rm(tmp, { force: true });
      await rm(final, { force: true });
      throw new CamveilError('CAMVEIL_E_STORE_WRITE_FAILED', `object ${objectId} was not stored: ${String(error)}`, {
        where: objectId,
        cause: error,
      });
    }
    let alongside: AlongsideCommit | undefined;
    try {
      alongside = await input.alongside?.({ path: final, bytes });
    } catch (error) {
      rmSync(final, { force: true });
      throw new CamveilError('CAMVEIL_E_STORE_WRITE_FAILED', `object ${objectId} was not stored: ${String(error)}`, { where: objectId, cause: error });
    }
    // From here on synchronous: no other put or retention run can interleave between making room and committing.
    if (this.#retention !== undefined) {
      const { quotaBytes, reserveBytes } = this.#retention;
      const free = reserveBytes === undefined ? undefined : this.freeBytes();
      if (this.totalBytes() + bytes > quotaBytes || (free !== undefined && free < reserveBytes!)) {
        try {
          // The new object's file is already on disk, so the free space the cap sees has already paid for it.
          const run = applyRetention(this, { ...this.#retention, quotaBytes: quotaBytes - bytes, now: this.#now() });
          this.#logger.info({ object: objectId, bytes, ...run }, 'store: made room for a new object');
        } catch (error) {
          // The new object is kept over quota rather than lost; the retention timer tries again.
          this.#logger.warn({ object: objectId, err: error }, 'store: could not make room for a new object');
        }
      }
    }
    const stored: StoredObject = { objectId, kind: input.kind, capturedAt: input.capturedAt, storedAt: this.#now(), bytes, path: final };
    if (input.cameraId !== undefined) stored.cameraId = input.cameraId;
    if (input.eventId !== undefined) stored.eventId = input.eventId;
    try {
      this.#db.transaction(() => {
        this.#db
          .prepare('INSERT INTO store_objects (object_id, kind, camera_id, event_id, captured_at, stored_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(objectId, stored.kind, stored.cameraId ?? null, stored.eventId ?? null, stored.capturedAt, stored.storedAt, bytes);
        alongside?.inTransaction();
      })();
    } catch (error) {
      rmSync(final, { force: true });
      alongside?.abandon();
      throw new CamveilError('CAMVEIL_E_STORE_WRITE_FAILED', `object ${objectId} was not indexed: ${String(error)}`, {
        where: objectId,
        cause: error,
      });
    }
    return stored;
  }

  /**
   * Bytes free for this process on the objects directory's file system (statfs), or undefined when it cannot
   * be told. Retention caps the quota with it (see RetentionOptions.reserveBytes).
   */
  freeBytes(): number | undefined {
    try {
      const fs = statfsSync(this.dir);
      return fs.bavail * fs.bsize;
    } catch {
      return undefined;
    }
  }

  /** Whether the store's writes are failing now (since when, how many), for the hub's state. */
  get writeFailures(): { count: number; since: number; code: string | undefined } | undefined {
    return this.#failing === undefined ? undefined : { ...this.#failing };
  }

  #writeFailed(error: CamveilError): void {
    REPORTED.add(error);
    const cause = error.cause as NodeJS.ErrnoException | undefined;
    const code = typeof cause?.code === 'string' ? cause.code : undefined;
    if (this.#failing !== undefined) {
      this.#failing.count += 1;
      this.#logger.debug({ code: error.code, cause: code, failures: this.#failing.count }, 'store: another write failed');
      return;
    }
    this.#failing = { count: 1, since: this.#now(), code };
    this.#failingElapsed = monotonicMs();
    // Once per burst: a full disk fails every clip, snapshot and event record until space returns.
    this.#logger.error(
      { code: error.code, err: error, freeBytes: this.freeBytes() },
      'store: objects cannot be written; what was half-written is discarded, the hub keeps running and retries with each new object',
    );
  }

  #writeSucceeded(): void {
    if (this.#failing === undefined) return;
    const { count, code } = this.#failing;
    this.#failing = undefined;
    this.#logger.info({ failedWrites: count, failingForMs: Math.round(monotonicMs() - this.#failingElapsed), cause: code }, 'store: writes succeed again');
  }

  get(objectId: string): StoredObject | undefined {
    const row = this.#db.prepare<[string], ObjectRow>('SELECT * FROM store_objects WHERE object_id = ?').get(objectId);
    return row === undefined ? undefined : this.#toObject(row);
  }

  list(query: ObjectQuery = {}): StoredObject[] {
    const direction = query.order === 'oldest' ? 'ASC' : 'DESC';
    // A rowid without AUTOINCREMENT is one more than the largest in the table, so it only grows while rows live.
    const order = query.order === 'stored' ? 'rowid ASC' : `captured_at ${direction}, object_id ${direction}`;
    const rows = this.#db
      .prepare<[Record<string, string | number | null>], ObjectRow>(
        `SELECT * FROM store_objects
         WHERE (@kind IS NULL OR kind = @kind) AND (@camera IS NULL OR camera_id = @camera) AND (@before IS NULL OR captured_at < @before)
         ORDER BY ${order} LIMIT @limit`,
      )
      .all({ kind: query.kind ?? null, camera: query.cameraId ?? null, before: query.before ?? null, limit: query.limit ?? 100 });
    return rows.map((row) => this.#toObject(row));
  }

  /**
   * The object's age file as a stream.
   * @throws CamveilError `CAMVEIL_E_STORE_NOT_FOUND` when there is no such object; the stream errors if the
   * file vanishes before it is opened.
   */
  openRead(objectId: string): Readable {
    const object = this.get(objectId);
    if (object === undefined || !existsSync(object.path)) {
      throw new CamveilError('CAMVEIL_E_STORE_NOT_FOUND', `no stored object ${objectId}`, { where: objectId });
    }
    return createReadStream(object.path);
  }

  /**
   * Removes an object: the row first, then the file, so a crash in between leaves an unindexed file that
   * `recover()` removes rather than a row without a file. Returns false when there was nothing to remove.
   */
  delete(objectId: string): boolean {
    if (!OBJECT_ID_PATTERN.test(objectId)) return false;
    const { changes } = this.#db.prepare('DELETE FROM store_objects WHERE object_id = ?').run(objectId);
    rmSync(this.pathOf(objectId), { force: true });
    return changes > 0;
  }

  totalBytes(): number {
    return (this.#db.prepare('SELECT coalesce(sum(bytes), 0) AS n FROM store_objects').get() as { n: number }).n;
  }

  count(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM store_objects').get() as { n: number }).n;
  }

  pathOf(objectId: string): string {
    return join(this.dir, objectId + AGE_SUFFIX);
  }

  recordEvent(event: StoredEvent): void {
    this.#events.record(event);
  }

  listEvents(query: EventQuery = {}): StoredEvent[] {
    return this.#events.list(query);
  }

  /** Removes events that ended before `cutoff` and have no object left; retention calls it. */
  pruneEvents(cutoff: number): number {
    return this.#events.pruneBefore(cutoff);
  }

  /**
   * Cleans up after a crash: deletes `*.tmp` files, deletes `.age` files without a row (renamed but never
   * committed: not trusted), and drops rows whose file is missing (logged as a warning with the count).
   * Files of a `put` in progress in this process are left alone.
   */
  recover(): RecoveryReport {
    this.#lastRecovery = recoverObjects(this.#db, this.dir, this.#writing, this.#logger);
    return this.#lastRecovery;
  }

  /** What the last `recover()` (the one `open` ran, unless called since) cleaned up. */
  get lastRecovery(): RecoveryReport | undefined {
    return this.#lastRecovery;
  }

  #toObject(row: ObjectRow): StoredObject {
    const object: StoredObject = {
      objectId: row.object_id,
      kind: row.kind,
      capturedAt: row.captured_at,
      storedAt: row.stored_at,
      bytes: row.bytes,
      path: this.pathOf(row.object_id),
    };
    if (row.camera_id !== null) object.cameraId = row.camera_id;
    if (row.event_id !== null) object.eventId = row.event_id;
    return object;
  }
}
