import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { base32 } from '../../crypto/base32.js';
import { encryptToBuffer } from '../../crypto/age-stream.js';
import { migrate } from '../../store/database.js';

/**
 * Enrolment photos the household asked the hub to keep (`--keep-photos`), e.g. to enrol again when the
 * face model changes. By default none are kept. Each photo's original bytes are one age file sealed to the
 * hub's own recipient; in clear only a random `photo_…` id, the person's id and the time. Deleted with the
 * person (and so by a withdrawal or a data deletion).
 */
const STEPS: readonly string[] = [
  `CREATE TABLE faces_photos (
     photo_id  TEXT PRIMARY KEY CHECK (photo_id GLOB 'photo_*'),
     person_id TEXT NOT NULL CHECK (person_id GLOB 'person_*'),
     added_at  TEXT NOT NULL,
     sealed    BLOB NOT NULL
   ) STRICT;
   CREATE INDEX faces_photos_person ON faces_photos (person_id);`,
];

export class KeptPhotos {
  readonly #db: Database.Database;
  readonly #recipient: string;

  constructor(db: Database.Database, hubRecipient: string) {
    this.#db = db;
    this.#recipient = hubRecipient;
    migrate(this.#db, 'faces-photos', STEPS);
  }

  /** Seals photos to the hub; nothing is stored until `insert` (so a refused enrolment keeps nothing). */
  async seal(photos: readonly Uint8Array[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const p of photos) out.push(await encryptToBuffer([this.#recipient], p));
    return out;
  }

  /** Stores sealed photos for a person; call inside the transaction that changes the person's templates. */
  insert(personId: string, sealed: readonly Buffer[], at: string): void {
    const ins = this.#db.prepare('INSERT INTO faces_photos (photo_id, person_id, added_at, sealed) VALUES (?, ?, ?, ?)');
    for (const s of sealed) ins.run(`photo_${base32(randomBytes(10))}`, personId, at, s);
  }

  countFor(personId: string): number {
    return this.#db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM faces_photos WHERE person_id = ?').get(personId)?.n ?? 0;
  }

  deleteFor(personId: string): number {
    return this.#db.prepare('DELETE FROM faces_photos WHERE person_id = ?').run(personId).changes;
  }
}
