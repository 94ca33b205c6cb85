import type Database from 'better-sqlite3';
import { migrate } from '../store/database.js';
import { objectUrl } from './endpoint.js';

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

  /** Sends every pending request (DELETE <endpoint>/v1/objects/<hub>/<id>); returns how many were done. */
  async flush(o: { endpoint: URL; hubPseudonym: string; token: string; timeoutMs?: number }): Promise<{ sent: number; pending: number }> {
    let sent = 0;
    for (const id of this.pending()) {
      let error: string | undefined;
      try {
        const res = await fetch(objectUrl(o.endpoint, o.hubPseudonym, id), {
          method: 'DELETE',
          headers: { authorization: `Bearer ${o.token}` },
          signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
        });
        await res.body?.cancel();
        if (res.ok || res.status === 404) {
          this.#db.prepare('DELETE FROM uplink_deletions WHERE object_id = ?').run(id);
          sent += 1;
          continue;
        }
        error = `HTTP ${res.status}`;
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      this.#db.prepare('UPDATE uplink_deletions SET attempts = attempts + 1, last_error = ? WHERE object_id = ?').run(error.slice(0, 200), id);
    }
    return { sent, pending: this.pending().length };
  }
}
