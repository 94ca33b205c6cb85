import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CamveilError } from '../errors.js';
import { refuseLostIndex } from './lost-index.js';

/** The hub's one SQLite file under the data directory; modules own their tables in it. */
export const DATABASE_FILE = 'camveil.db';

/**
 * `PRAGMA user_version` of a database whose per-module versions live in `schema_versions`. A higher value
 * was written by a newer camveil whose layout this one cannot know.
 */
const LAYOUT_VERSION = 1;

/** How long a statement waits for another connection's lock before SQLITE_BUSY (the CLI may open the file too). */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * Opens (creating when absent) `<dataDir>/camveil.db`: directory 0700, file 0600, WAL, `synchronous = FULL`,
 * foreign keys on, a busy timeout. FULL rather than NORMAL: NORMAL in WAL mode never corrupts the database,
 * but a power cut may roll back the last commits, and the store reports an object as committed (and the
 * uplink may upload it) right after its row commits.
 *
 * @throws CamveilError `CAMVEIL_E_STORE_CORRUPT`, naming the file, when it cannot be opened, is not a SQLite
 * database, or was laid out by a newer camveil; or when it is missing or empty beside objects, staged uploads
 * or keys of an earlier run (refuseLostIndex: lost state is never taken for a fresh hub).
 */
export function openDatabase(dataDir: string): Database.Database {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, DATABASE_FILE);
  refuseLostIndex(dataDir, file);
  let db: Database.Database | undefined;
  try {
    // Created here first so the WAL and shared-memory files, which SQLite gives the database's mode, are 0600 too.
    closeSync(openSync(file, 'a', 0o600));
    chmodSync(file, 0o600);
    db = new Database(file);
    // The first statement reads the header: a file that is not a database fails here, not at open.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const layout = db.pragma('user_version', { simple: true }) as number;
    if (layout > LAYOUT_VERSION) {
      throw new CamveilError('CAMVEIL_E_STORE_CORRUPT', `${file}: layout version ${layout} is newer than this camveil (${LAYOUT_VERSION})`, {
        where: file,
      });
    }
    if (layout < LAYOUT_VERSION) {
      db.exec('CREATE TABLE IF NOT EXISTS schema_versions (module TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT');
      db.pragma(`user_version = ${LAYOUT_VERSION}`);
    }
    return db;
  } catch (error) {
    db?.close();
    if (error instanceof CamveilError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new CamveilError('CAMVEIL_E_STORE_CORRUPT', `${file}: cannot open the database: ${reason}`, { where: file, cause: error });
  }
}

/**
 * Brings one module's tables up to date: runs `steps[v]`, `steps[v + 1]`, … where `v` is the module's version
 * in `schema_versions` (0 when absent), all in one immediate transaction, and records `steps.length`.
 * Steps are append-only: never edit or reorder a step that has shipped. Returns the version now in force.
 *
 * @throws CamveilError `CAMVEIL_E_STORE_CORRUPT` when the database records a newer version of the module
 * than `steps` knows (a downgrade), or when a step fails (the transaction is rolled back).
 */
export function migrate(db: Database.Database, module: string, steps: readonly string[]): number {
  const read = db.prepare<[string], { version: number }>('SELECT version FROM schema_versions WHERE module = ?');
  const write = db.prepare<[string, number]>(
    'INSERT INTO schema_versions (module, version) VALUES (?, ?) ON CONFLICT (module) DO UPDATE SET version = excluded.version',
  );
  const run = db.transaction(() => {
    const current = read.get(module)?.version ?? 0;
    if (current > steps.length) {
      throw new CamveilError(
        'CAMVEIL_E_STORE_CORRUPT',
        `${db.name}: module ${module} is at schema version ${current}, newer than this camveil (${steps.length})`,
        { where: db.name },
      );
    }
    for (let v = current; v < steps.length; v++) db.exec(steps[v]!);
    if (current !== steps.length) write.run(module, steps.length);
    return steps.length;
  });
  try {
    return run.immediate();
  } catch (error) {
    if (error instanceof CamveilError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new CamveilError('CAMVEIL_E_STORE_CORRUPT', `${db.name}: migrating ${module} failed: ${reason}`, { where: db.name, cause: error });
  }
}
