import type Database from 'better-sqlite3';
import { z } from 'zod';
import { decryptToBuffer, encryptToBuffer } from '../crypto/age-stream.js';
import { INCIDENT_REASONS } from '../events.js';
import { migrate } from '../store/database.js';
import type { SecurityEvent } from './sealed-events.js';

/** How many untold incidents the hub keeps: the newest win, so a long outage cannot fill the disk. */
export const MAX_PENDING_INCIDENTS = 100;

export const PENDING_INCIDENTS_MODULE = 'control_incidents';

/** Append-only migration steps for the queue's table. */
export const PENDING_INCIDENTS_SCHEMA: readonly string[] = [
  `
CREATE TABLE control_pending_incidents (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  at     INTEGER NOT NULL,
  sealed BLOB NOT NULL
) STRICT;
`,
];

/** What a row opens to: a security event as it will be sealed to the household (validated: the row is on disk). */
const securityEventSchema = z.strictObject({
  type: z.literal('security'),
  reason: z.enum(INCIDENT_REASONS),
  detail: z.string().max(1024).optional(),
  camera: z.string().max(64).optional(),
  suppressed: z.number().int().min(0).optional(),
  at: z.number().int().min(0),
});

export interface PendingIncidentsOptions {
  db: Database.Database;
  /** The hub's own age keys: rows are sealed to its recipient before they touch the disk. */
  hub: { identity: string; recipient: string };
  max?: number;
}

/**
 * Security incidents the household has not been told of yet because the broker was unreachable (or refused
 * the publish): kept in the hub's database, each sealed with age to the hub's own recipient before it is
 * written, at most `max` (the oldest go first), so a restart keeps them. `drain` publishes them in order once
 * the connection is back; a row is deleted only after its event was published. Opening a row again is the
 * hub's business only: on the wire it is sealed afresh to the household and the paired phones.
 */
export class PendingIncidents {
  readonly #o: PendingIncidentsOptions;
  readonly #max: number;
  #draining: Promise<number> | undefined;
  /** The last add, so the next one is kept after it (sealing is asynchronous). */
  #adding: Promise<unknown> = Promise.resolve();
  #again = false;

  constructor(options: PendingIncidentsOptions) {
    this.#o = options;
    this.#max = options.max ?? MAX_PENDING_INCIDENTS;
    migrate(options.db, PENDING_INCIDENTS_MODULE, PENDING_INCIDENTS_SCHEMA);
  }

  /**
   * Keeps one event; returns how many older ones were dropped to stay within `max`. Events are kept in the
   * order `add` was called, though each is sealed asynchronously: the household hears of incidents in the
   * order they happened.
   */
  add(event: SecurityEvent): Promise<number> {
    const kept = this.#adding.then(() => this.#keep(event));
    this.#adding = kept.catch(() => undefined);
    return kept;
  }

  async #keep(event: SecurityEvent): Promise<number> {
    const sealed = await encryptToBuffer([this.#o.hub.recipient], Buffer.from(JSON.stringify(event), 'utf8'));
    const db = this.#o.db;
    return db.transaction(() => {
      db.prepare('INSERT INTO control_pending_incidents (at, sealed) VALUES (?, ?)').run(event.at, sealed);
      return db
        .prepare('DELETE FROM control_pending_incidents WHERE seq NOT IN (SELECT seq FROM control_pending_incidents ORDER BY seq DESC LIMIT ?)')
        .run(this.#max).changes;
    })();
  }

  count(): number {
    return this.#o.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM control_pending_incidents').get()?.n ?? 0;
  }

  /**
   * Publishes every kept event, oldest first, one at a time; each row goes once `publish` resolved true. Stops
   * at the first that is not published (false: nobody to seal to; a throw: the broker is gone again) and keeps
   * it and the rest for the next call. A row that no longer opens or validates is dropped (it can never be
   * told) and counted in `onUnreadable`. Concurrent calls share one run. Returns how many were published.
   */
  drain(publish: (event: SecurityEvent) => Promise<boolean>, onUnreadable?: (error: unknown) => void): Promise<number> {
    if (this.#draining !== undefined) {
      // A row added after the running pass read past it is picked up by one more pass.
      this.#again = true;
      return this.#draining;
    }
    const run = async (): Promise<number> => {
      let total = 0;
      do {
        this.#again = false;
        const pass = await this.#drain(publish, onUnreadable);
        total += pass.published;
        if (!pass.complete) break;
      } while (this.#again);
      return total;
    };
    this.#draining = run().finally(() => (this.#draining = undefined));
    return this.#draining;
  }

  async #drain(publish: (event: SecurityEvent) => Promise<boolean>, onUnreadable?: (error: unknown) => void): Promise<{ published: number; complete: boolean }> {
    const db = this.#o.db;
    const next = db.prepare<[number], { seq: number; sealed: Buffer }>('SELECT seq, sealed FROM control_pending_incidents WHERE seq > ? ORDER BY seq LIMIT 1');
    const drop = db.prepare<[number]>('DELETE FROM control_pending_incidents WHERE seq = ?');
    let published = 0;
    for (let row = next.get(0); row !== undefined; row = next.get(row.seq)) {
      let event: SecurityEvent;
      try {
        event = securityEventSchema.parse(JSON.parse((await decryptToBuffer(this.#o.hub.identity, row.sealed)).toString('utf8')));
      } catch (error) {
        drop.run(row.seq);
        onUnreadable?.(error);
        continue;
      }
      if (!(await publish(event))) return { published, complete: false };
      drop.run(row.seq);
      published += 1;
    }
    return { published, complete: true };
  }
}
