import type Database from 'better-sqlite3';

/** One motion event as the hub indexes it: ids and times only (what happened is in the sealed `event` object). */
export interface StoredEvent {
  eventId: string;
  cameraId: string;
  kind: 'motion';
  /** Epoch milliseconds. */
  startedAt: number;
  endedAt?: number;
}

export interface EventQuery {
  cameraId?: string;
  /** Only events that started strictly before this time (epoch ms), for paging back. */
  before?: number;
  /** At most this many, newest first; 100 when absent. */
  limit?: number;
}

interface EventRow {
  event_id: string;
  camera_id: string;
  kind: 'motion';
  started_at: number;
  ended_at: number | null;
}

function toEvent(row: EventRow): StoredEvent {
  const event: StoredEvent = { eventId: row.event_id, cameraId: row.camera_id, kind: row.kind, startedAt: row.started_at };
  if (row.ended_at !== null) event.endedAt = row.ended_at;
  return event;
}

/** The `store_events` table (created by the store's migration). */
export class EventIndex {
  readonly #record: Database.Statement<[string, string, string, number, number | null]>;
  readonly #list: Database.Statement<[string | null, string | null, number | null, number | null, number]>;
  readonly #pruneBefore: Database.Statement<[number]>;

  constructor(db: Database.Database) {
    // Recording twice is how an event's end is added: the first start wins, an end is never cleared.
    this.#record = db.prepare(
      `INSERT INTO store_events (event_id, camera_id, kind, started_at, ended_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (event_id) DO UPDATE SET ended_at = coalesce(excluded.ended_at, store_events.ended_at)`,
    );
    this.#list = db.prepare(
      `SELECT * FROM store_events
       WHERE (? IS NULL OR camera_id = ?) AND (? IS NULL OR started_at < ?)
       ORDER BY started_at DESC, event_id DESC LIMIT ?`,
    );
    this.#pruneBefore = db.prepare(
      `DELETE FROM store_events
       WHERE coalesce(ended_at, started_at) < ?
         AND NOT EXISTS (SELECT 1 FROM store_objects o WHERE o.event_id = store_events.event_id)`,
    );
  }

  /** Adds an event, or its end time to one already recorded. */
  record(event: StoredEvent): void {
    this.#record.run(event.eventId, event.cameraId, event.kind, event.startedAt, event.endedAt ?? null);
  }

  list(query: EventQuery = {}): StoredEvent[] {
    const camera = query.cameraId ?? null;
    const before = query.before ?? null;
    return (this.#list.all(camera, camera, before, before, query.limit ?? 100) as EventRow[]).map(toEvent);
  }

  /** Removes events that ended before `cutoff` and no longer have any object; returns how many. */
  pruneBefore(cutoff: number): number {
    return this.#pruneBefore.run(cutoff).changes;
  }
}
