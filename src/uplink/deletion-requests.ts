import type Database from 'better-sqlite3';
import { migrate } from '../store/database.js';
import type { RemoteObjectStore } from './remote-object-store.js';

const SCHEMA = [
  `CREATE TABLE uplink_deletions (object_id TEXT PRIMARY KEY, requested_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
     last_error TEXT) STRICT`,
];

/**
 * Requests to the cloud to delete objects it holds, after a data-subject deletion or a withdrawal of face
 * recognition. They carry only object ids (the cloud never knew more), so they are sent even in local-only
 * mode; a request stays pending until the cloud answers 2xx or 404 (already gone).
 */
export class DeletionRequests {
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
    migrate(db, 'uplink-deletions', SCHEMA);
  }

  add(objectIds: readonly string[], now = Date.now()): number {
    const insert = this.#db.prepare('INSERT OR IGNORE INTO uplink_deletions (object_id, requested_at) VALUES (?, ?)');
    return this.#db.transaction(() => objectIds.reduce((n, id) => n + insert.run(id, now).changes, 0))();
  }

  pending(): string[] {
    return (this.#db.prepare('SELECT object_id FROM uplink_deletions ORDER BY requested_at').all() as Array<{ object_id: string }>).map((r) => r.object_id);
  }

  /**
   * Sends every pending request to the remote store; a request leaves the table once the store confirms it
   * (an object it does not hold counts), and stays, with its error, otherwise. Never throws for the store.
   */
  async flush(remote: Pick<RemoteObjectStore, 'delete'>): Promise<{ sent: number; pending: number }> {
    const ids = this.pending();
    if (ids.length === 0) return { sent: 0, pending: 0 };
    const { deleted, failed } = await remote.delete(ids);
    const done = this.#db.prepare('DELETE FROM uplink_deletions WHERE object_id = ?');
    const fail = this.#db.prepare('UPDATE uplink_deletions SET attempts = attempts + 1, last_error = ? WHERE object_id = ?');
    this.#db.transaction(() => {
      for (const id of deleted) done.run(id);
      for (const f of failed) fail.run(f.error.message.slice(0, 200), f.objectId);
    })();
    return { sent: deleted.length, pending: this.pending().length };
  }
}
