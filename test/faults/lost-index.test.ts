import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptStream } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { CamveilError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { DATABASE_FILE, openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { camveilCli as camveil } from '../harness/hub-process.js';

const OBJECTS = 40;


/**
 * Losing the index is never a fresh install: before, a zero-length camveil.db beside 290 sealed objects was
 * opened as a new database and the start-up sweep deleted every object as "unindexed".
 */
describe('lost state is never a fresh hub', () => {
  let root: string;
  let dataDir: string;
  let configFile: string;
  let saved: string;
  const ages = () => readdirSync(path.join(dataDir, 'objects')).filter((f) => f.endsWith('.age')).length;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-lost-'));
    dataDir = path.join(root, 'hub');
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify({ hub: { id: 'lost-hub', region: 'DE' }, dataDir, cameras: [] }));
    await loadOrCreateHubKeys(dataDir);
    const recipient = await identityToRecipient(await generateX25519Identity());
    const db = openDatabase(dataDir);
    const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
    for (let i = 0; i < OBJECTS; i++) {
      await store.put({ objectId: newObjectId(), kind: 'clip', cameraId: 'porch', capturedAt: Date.now(), body: encryptStream([recipient], [Buffer.from(`clip ${i}`)]) });
    }
    db.close();
    saved = path.join(root, 'camveil.db.saved');
    copyFileSync(path.join(dataDir, DATABASE_FILE), saved);
  }, 60_000);

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('camveil run refuses an empty camveil.db beside sealed objects, naming what it found, and deletes nothing', async () => {
    truncateSync(path.join(dataDir, DATABASE_FILE), 0);
    const r = await camveil(['run', '--config', configFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('CAMVEIL_E_STORE_CORRUPT');
    expect(r.stderr).toContain(`camveil.db is empty but objects/ holds ${OBJECTS} .age file(s)`);
    expect(ages()).toBe(OBJECTS);
    expect(statSync(path.join(dataDir, DATABASE_FILE)).size).toBe(0);
    // The fatal line says the same on the log.
    expect(r.stdout).toContain('"level":60');
  });

  it('and a missing one', async () => {
    rmSync(path.join(dataDir, DATABASE_FILE));
    const r = await camveil(['run', '--config', configFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`camveil.db is missing but objects/ holds ${OBJECTS} .age file(s)`);
    expect(ages()).toBe(OBJECTS);
    expect(readdirSync(dataDir)).not.toContain(DATABASE_FILE);
  });

  it('keys from an earlier run without a database are lost state too; keys just made are a first start', () => {
    const other = path.join(root, 'keys-only');
    return loadOrCreateHubKeys(other).then(() => {
      // Made a moment ago: the first start that created them is allowed to create its database.
      openDatabase(other).close();
      rmSync(path.join(other, DATABASE_FILE));
      const old = new Date(Date.now() - 3_600_000);
      utimesSync(path.join(other, 'keys', 'hub-identity.txt'), old, old);
      expect(() => openDatabase(other)).toThrow(/camveil\.db is missing but keys\/hub-identity\.txt exists since/);
    });
  });

  it('an index that does not know most of the objects (replaced or rolled back) is refused before the sweep deletes anything', () => {
    // A valid but fresh database (another hub's, or an old backup) where the real one was.
    const fresh = path.join(root, 'fresh');
    openDatabase(fresh).close();
    copyFileSync(path.join(fresh, DATABASE_FILE), path.join(dataDir, DATABASE_FILE));
    const db = openDatabase(dataDir);
    try {
      let error: unknown;
      try {
        ObjectStore.open({ db, dataDir, logger: silentLogger() });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CamveilError);
      expect((error as CamveilError).code).toBe('CAMVEIL_E_STORE_CORRUPT');
      expect((error as CamveilError).message).toContain(`holds ${OBJECTS} .age files the index does not know (it knows 0)`);
      expect(ages()).toBe(OBJECTS);
    } finally {
      db.close();
    }
    // The real index back: everything is there again.
    for (const suffix of ['', '-wal', '-shm']) rmSync(path.join(dataDir, DATABASE_FILE + suffix), { force: true });
    copyFileSync(saved, path.join(dataDir, DATABASE_FILE));
    const again = openDatabase(dataDir);
    try {
      expect(ObjectStore.open({ db: again, dataDir, logger: silentLogger() }).count()).toBe(OBJECTS);
    } finally {
      again.close();
    }
  });
});
