import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { base32 } from '../../crypto/base32.js';
import { decryptToBuffer, encryptToBuffer } from '../../crypto/age-stream.js';
import { CamveilError } from '../../errors.js';
import { migrate } from '../../store/database.js';

/**
 * Confirmed face sightings, kept so that the household can correct them ("this is X", "this is not X")
 * from an alert. In clear only the random `sight_…` id, the camera id, the time and a person tag; who was
 * recognised (or that nobody was), the motion event and the confirming 128-D descriptor are sealed to the
 * hub's own recipient, like the templates, so the database never links a person to events in clear. The
 * tag is an HMAC of the matched person id (of the sighting id for an unknown face, so every row looks
 * alike), keyed from the hub identity: it lets a person's sightings be deleted with the person, in the
 * same transaction, without opening every row. Kept for `faceRecognition.sightingRetentionDays` only.
 */
const STEPS: readonly string[] = [
  `CREATE TABLE faces_sightings (
     sighting_id TEXT PRIMARY KEY CHECK (sighting_id GLOB 'sight_*'),
     camera_id   TEXT NOT NULL,
     at          INTEGER NOT NULL,
     person_tag  TEXT NOT NULL,
     sealed      BLOB NOT NULL
   ) STRICT;
   CREATE INDEX faces_sightings_at ON faces_sightings (at);
   CREATE INDEX faces_sightings_tag ON faces_sightings (person_tag);`,
];

export const SIGHTING_ID_PATTERN = /^sight_[a-z2-7]{16}$/;

/** A new random sighting id: `sight_` and 16 base32 characters (80 bits). */
export function newSightingId(): string {
  return `sight_${base32(randomBytes(10))}`;
}

/** A sighting as listed: no descriptor. `at` is Unix milliseconds. */
export interface SightingSummary {
  sightingId: string;
  cameraId: string;
  eventId?: string;
  at: number;
  label: 'known' | 'unknown';
  personId?: string;
}

export interface SightingRecord extends SightingSummary {
  descriptor: Float32Array;
}

interface Row {
  sighting_id: string;
  camera_id: string;
  at: number;
  sealed: Buffer;
}

/** What is sealed per sighting. */
const sealedSchema = z.strictObject({
  v: z.literal(1),
  label: z.enum(['known', 'unknown']),
  personId: z.string().optional(),
  eventId: z.string().optional(),
  /** The descriptor's float32 bytes, base64. */
  descriptor: z.string(),
});

const DAY_MS = 86_400_000;

/** The sightings table in the hub's database. Writes and deletions are synchronous except the sealing. */
export class SightingStore {
  readonly #db: Database.Database;
  readonly #hub: { identity: string; recipient: string };
  readonly #now: () => number;
  readonly #tagKey: Buffer;

  constructor(options: { db: Database.Database; hub: { identity: string; recipient: string }; now?: () => number }) {
    this.#db = options.db;
    this.#hub = options.hub;
    this.#now = options.now ?? Date.now;
    this.#tagKey = Buffer.from(hkdfSync('sha256', options.hub.identity, '', 'camveil faces-sightings person tag', 32));
    migrate(this.#db, 'faces-sightings', STEPS);
    this.#db.pragma('secure_delete = ON');
  }

  #tag(value: string): string {
    return createHmac('sha256', this.#tagKey).update(value, 'utf8').digest('base64url');
  }

  /** Seals who, which event and the descriptor to the hub and stores the sighting under `sighting.sightingId`. */
  async record(sighting: SightingRecord): Promise<void> {
    if (!SIGHTING_ID_PATTERN.test(sighting.sightingId)) throw new CamveilError('CAMVEIL_E_INTERNAL', 'malformed sighting id', { where: 'sightings' });
    const d = sighting.descriptor;
    const personId = sighting.label === 'known' ? sighting.personId : undefined;
    const content: z.infer<typeof sealedSchema> = {
      v: 1,
      label: sighting.label,
      ...(personId === undefined ? {} : { personId }),
      ...(sighting.eventId === undefined ? {} : { eventId: sighting.eventId }),
      descriptor: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'),
    };
    const sealed = await encryptToBuffer([this.#hub.recipient], Buffer.from(JSON.stringify(content)));
    this.#db
      .prepare('INSERT INTO faces_sightings (sighting_id, camera_id, at, person_tag, sealed) VALUES (?, ?, ?, ?, ?)')
      .run(sighting.sightingId, sighting.cameraId, Math.round(sighting.at), this.#tag(personId ?? sighting.sightingId), sealed);
  }

  async #open(row: Row): Promise<SightingRecord> {
    let content: z.infer<typeof sealedSchema>;
    try {
      content = sealedSchema.parse(JSON.parse((await decryptToBuffer(this.#hub.identity, row.sealed)).toString('utf8')));
    } catch (error) {
      throw new CamveilError('CAMVEIL_E_STORE_CORRUPT', `sighting ${row.sighting_id} does not open with the hub key`, { where: 'faces_sightings', cause: error });
    }
    const bytes = Buffer.from(content.descriptor, 'base64');
    const descriptor = new Float32Array(bytes.length / 4);
    new Uint8Array(descriptor.buffer).set(bytes);
    return {
      sightingId: row.sighting_id,
      cameraId: row.camera_id,
      ...(content.eventId === undefined ? {} : { eventId: content.eventId }),
      at: row.at,
      label: content.label,
      ...(content.personId === undefined ? {} : { personId: content.personId }),
      descriptor,
    };
  }

  /** One sighting with its descriptor (decrypted, RAM only). @throws CamveilError `CAMVEIL_E_SIGHTING_NOT_FOUND`. */
  async get(sightingId: string): Promise<SightingRecord> {
    const row = this.#db.prepare<[string], Row>('SELECT sighting_id, camera_id, at, sealed FROM faces_sightings WHERE sighting_id = ?').get(sightingId);
    if (row === undefined) {
      throw new CamveilError('CAMVEIL_E_SIGHTING_NOT_FOUND', `no sighting ${sightingId} (unknown, or deleted after the retention period)`, { where: 'sightingId' });
    }
    return this.#open(row);
  }

  /** The most recent sightings first, opened with the hub key, without descriptors. */
  async list(limit = 100): Promise<SightingSummary[]> {
    const rows = this.#db.prepare<[number], Row>('SELECT sighting_id, camera_id, at, sealed FROM faces_sightings ORDER BY at DESC, sighting_id LIMIT ?').all(limit);
    const out: SightingSummary[] = [];
    for (const row of rows) {
      const { sightingId, cameraId, eventId, at, label, personId } = await this.#open(row);
      out.push({ sightingId, cameraId, ...(eventId === undefined ? {} : { eventId }), at, label, ...(personId === undefined ? {} : { personId }) });
    }
    return out;
  }

  count(): number {
    return this.#db.prepare<[], { n: number }>('SELECT count(*) AS n FROM faces_sightings').get()?.n ?? 0;
  }

  /** Deletes sightings older than `days` days; returns how many. */
  deleteOlderThan(days: number): number {
    return this.#delete('DELETE FROM faces_sightings WHERE at < ?', this.#now() - days * DAY_MS);
  }

  /** Deletes every sighting (faceRecognition withdrawn, data deletion); returns how many. */
  deleteAll(): number {
    return this.#delete('DELETE FROM faces_sightings');
  }

  /** Deletes the sightings in which these people were recognised (the people are being deleted), by their tags. */
  deleteForPeople(personIds: readonly string[]): number {
    let n = 0;
    const del = this.#db.prepare('DELETE FROM faces_sightings WHERE person_tag = ?');
    for (const id of personIds) n += del.run(this.#tag(id)).changes;
    return n;
  }

  #delete(sql: string, ...params: number[]): number {
    const n = this.#db.prepare(sql).run(...params).changes;
    if (n > 0) {
      try {
        this.#db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // another connection holds a read lock: the WAL is reset at its next checkpoint
      }
    }
    return n;
  }
}

/**
 * Deletes expired sightings now and then every `intervalMs` (default hourly). Returns the function that
 * stops the timer. Failures are reported to `onError` and retried at the next tick.
 */
export function startSightingRetention(store: SightingStore, days: () => number, onDeleted: (n: number) => void, onError: (error: unknown) => void, intervalMs = 3_600_000): () => void {
  const tick = () => {
    try {
      const n = store.deleteOlderThan(days());
      if (n > 0) onDeleted(n);
    } catch (error) {
      onError(error);
    }
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
