import type Database from 'better-sqlite3';
import { decryptToBuffer, encryptToBuffer } from '../crypto/age-stream.js';
import { OBJECT_ID_PATTERN } from '../crypto/manifest.js';
import { migrate } from '../store/database.js';

/**
 * The hub's own record of each person's face album: one row per enrolled person who has been seen, holding
 * in clear only the random `person_…` id; the sightings, the id of the album object last sealed for the
 * household, when, and whether a change waits are one age file sealed to the hub's own recipient (as the
 * templates are). A person id in clear next to a time or an object id would let anyone with the database
 * link the person to the motion events the store indexes in clear by time.
 *
 * `face_album_retired` holds the random ids of album objects that were replaced or deleted but may still be
 * on their way to the cloud, until it is known whether the cloud must be asked to delete them.
 */
export const FACE_ALBUM_MODULE = 'face-albums';

const STEPS: readonly string[] = [
  `CREATE TABLE face_albums (
     person_id TEXT PRIMARY KEY CHECK (person_id GLOB 'person_*'),
     sealed    BLOB NOT NULL
   ) STRICT;
   CREATE TABLE face_album_retired (
     object_id  TEXT PRIMARY KEY CHECK (length(object_id) = 26 AND object_id NOT GLOB '*[^a-z2-7]*'),
     retired_at INTEGER NOT NULL
   ) STRICT;`,
];

/** One confirmed sighting of a person, as the album lists it. `at` is epoch ms. */
export interface AlbumSighting {
  sightingId: string;
  /** The motion event the sighting belongs to, when the face stage knew it. */
  eventId?: string;
  cameraPseudonym: string;
  at: number;
  distance: number;
}

/** What is sealed per person. */
export interface AlbumState {
  v: 1;
  /** Oldest first. */
  sightings: AlbumSighting[];
  /** A change not yet sealed into an album object. */
  dirty: boolean;
  /** When the last album object was sealed (epoch ms). */
  publishedAt?: number;
  /** The album object last sealed for the household (it supersedes every earlier one). */
  objectId?: string;
}

export interface RetiredAlbum {
  objectId: string;
  retiredAt: number;
}

/** The face-album tables in the hub's database. Reads and writes are synchronous except the sealing. */
export class FaceAlbumRows {
  readonly #db: Database.Database;
  readonly #hub: { identity: string; recipient: string };

  constructor(db: Database.Database, hub: { identity: string; recipient: string }) {
    this.#db = db;
    this.#hub = hub;
    migrate(db, FACE_ALBUM_MODULE, STEPS);
    // Replaced and deleted rows are overwritten, not left in free pages (as for the templates).
    db.pragma('secure_delete = ON');
  }

  /**
   * Every album, opened with the hub identity (RAM only). A row that does not open (damaged, or sealed to
   * another hub key) is deleted rather than stopping the hub: it only ever held a copy of what the cameras
   * saw, and the next sighting starts the album again. `dropped` counts them.
   */
  async loadAll(): Promise<{ albums: Map<string, AlbumState>; dropped: number }> {
    const rows = this.#db.prepare<[], { person_id: string; sealed: Buffer }>('SELECT person_id, sealed FROM face_albums ORDER BY person_id').all();
    const albums = new Map<string, AlbumState>();
    let dropped = 0;
    for (const row of rows) {
      try {
        albums.set(row.person_id, JSON.parse((await decryptToBuffer(this.#hub.identity, row.sealed)).toString('utf8')) as AlbumState);
      } catch {
        this.delete(row.person_id);
        dropped += 1;
      }
    }
    return { albums, dropped };
  }

  /** Seals `state` to the hub and writes it (insert or replace). */
  async save(personId: string, state: AlbumState): Promise<void> {
    const sealed = await encryptToBuffer([this.#hub.recipient], Buffer.from(JSON.stringify(state), 'utf8'));
    this.#db
      .prepare('INSERT INTO face_albums (person_id, sealed) VALUES (?, ?) ON CONFLICT (person_id) DO UPDATE SET sealed = excluded.sealed')
      .run(personId, sealed);
  }

  delete(personId: string): boolean {
    return this.#db.prepare('DELETE FROM face_albums WHERE person_id = ?').run(personId).changes > 0;
  }

  personIds(): string[] {
    return this.#db.prepare<[], { person_id: string }>('SELECT person_id FROM face_albums').all().map((r) => r.person_id);
  }

  retire(objectIds: readonly string[], at: number): void {
    const insert = this.#db.prepare('INSERT OR IGNORE INTO face_album_retired (object_id, retired_at) VALUES (?, ?)');
    this.#db.transaction(() => objectIds.filter((id) => OBJECT_ID_PATTERN.test(id)).forEach((id) => insert.run(id, at)))();
  }

  retired(): RetiredAlbum[] {
    return this.#db
      .prepare<[], { object_id: string; retired_at: number }>('SELECT object_id, retired_at FROM face_album_retired ORDER BY retired_at')
      .all()
      .map((r) => ({ objectId: r.object_id, retiredAt: r.retired_at }));
  }

  isRetired(objectId: string): boolean {
    return this.#db.prepare('SELECT 1 FROM face_album_retired WHERE object_id = ?').get(objectId) !== undefined;
  }

  forgetRetired(objectId: string): void {
    this.#db.prepare('DELETE FROM face_album_retired WHERE object_id = ?').run(objectId);
  }
}

/**
 * Drops every face-album row (a household's deletion request: the album objects themselves are deleted,
 * and the cloud asked to delete its copies, with the rest of the store). Returns how many albums there were.
 */
export function dropAllAlbums(db: Database.Database): number {
  migrate(db, FACE_ALBUM_MODULE, STEPS);
  db.pragma('secure_delete = ON');
  return db.transaction(() => {
    db.prepare('DELETE FROM face_album_retired').run();
    return db.prepare('DELETE FROM face_albums').run().changes;
  })();
}
