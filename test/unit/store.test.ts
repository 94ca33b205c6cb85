import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import fc from 'fast-check';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { collect, decryptToBuffer, encryptStream, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { CamveilError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { DATABASE_FILE, migrate, openDatabase } from '../../src/store/database.js';
import { ObjectStore, type ObjectStoreOptions } from '../../src/store/object-store.js';
import { applyRetention } from '../../src/store/retention.js';

const DAY = 24 * 60 * 60 * 1000;
const NOW = Date.UTC(2026, 10, 23, 12);

let identity: string;
let recipient: string;
let dataDir: string;
let db: Database.Database;

beforeAll(async () => {
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
});

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'camveil-store-'));
  db = openDatabase(dataDir);
});

afterEach(() => {
  db.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function openStore(extra: Partial<ObjectStoreOptions> = {}): ObjectStore {
  return ObjectStore.open({ db, dataDir, logger: silentLogger(), now: () => NOW, ...extra });
}

function digest(bytes: Uint8Array): string {
  return `${bytes.length}:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Stores a pre-encrypted buffer (small, fixed-size ciphertext for the retention tests). */
async function putBytes(store: ObjectStore, ciphertext: Buffer, capturedAt: number, objectId = newObjectId()) {
  return store.put({ objectId, kind: 'clip', cameraId: 'front', capturedAt, body: Readable.from([ciphertext]) });
}

/** The code and `where` of what `fn` throws (vitest's matchers take `any` for asymmetric errors). */
function thrown(fn: () => unknown): { code?: string; where?: string | undefined } {
  try {
    fn();
  } catch (error) {
    return error instanceof CamveilError ? { code: error.code, where: error.where } : { code: String(error) };
  }
  return {};
}

function objectFiles(): string[] {
  return readdirSync(join(dataDir, 'objects')).sort();
}

describe('database', () => {
  it('opens WAL with FULL sync and foreign keys, the file 0600 in a 0700 directory', () => {
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(statSync(join(dataDir, DATABASE_FILE)).mode & 0o777).toBe(0o600);
  });

  it('runs each module migration step once and refuses a downgrade', () => {
    const steps = ['CREATE TABLE a (x INTEGER) STRICT', 'ALTER TABLE a ADD COLUMN y INTEGER'];
    expect(migrate(db, 'test', steps.slice(0, 1))).toBe(1);
    expect(migrate(db, 'test', steps)).toBe(2);
    expect(migrate(db, 'test', steps)).toBe(2);
    expect(migrate(db, 'other', [])).toBe(0);
    db.prepare('INSERT INTO a (x, y) VALUES (1, 2)').run();
    expect(thrown(() => migrate(db, 'test', steps.slice(0, 1))).code).toBe('CAMVEIL_E_STORE_CORRUPT');
  });

  it('rolls back a failing migration step', () => {
    expect(() => migrate(db, 'bad', ['CREATE TABLE b (x INTEGER)', 'NOT SQL'])).toThrow(CamveilError);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'b'").get()).toEqual({ n: 0 });
    expect(migrate(db, 'bad', ['CREATE TABLE b (x INTEGER)'])).toBe(1);
  });

  it('names the file when it is not a database', () => {
    const dir = mkdtempSync(join(tmpdir(), 'camveil-corrupt-'));
    try {
      writeFileSync(join(dir, DATABASE_FILE), randomBytes(8192));
      expect(thrown(() => openDatabase(dir))).toEqual({ code: 'CAMVEIL_E_STORE_CORRUPT', where: join(dir, DATABASE_FILE) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ObjectStore', () => {
  it('stores real age ciphertext that decrypts back, and gets, lists, reads and deletes it', async () => {
    const store = openStore();
    const plaintext = randomBytes(300 * 1024 + 7);
    const objectId = newObjectId();
    const stored = await store.put({
      objectId,
      kind: 'clip',
      cameraId: 'front',
      eventId: 'ev1',
      capturedAt: NOW - 1000,
      body: encryptStream([recipient], plaintext),
    });
    expect(stored).toMatchObject({ objectId, kind: 'clip', cameraId: 'front', eventId: 'ev1', capturedAt: NOW - 1000, storedAt: NOW });
    expect(stored.path).toBe(join(dataDir, 'objects', `${objectId}.age`));
    expect(stored.bytes).toBe(statSync(stored.path).size);
    expect(statSync(stored.path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'objects')).mode & 0o777).toBe(0o700);
    expect(digest(await decryptToBuffer(identity, readFileSync(stored.path)))).toBe(digest(plaintext));
    expect(digest(await decryptToBuffer(identity, await collect(store.openRead(objectId))))).toBe(digest(plaintext));

    expect(store.get(objectId)).toEqual(stored);
    const snap = await putBytes(store, await encryptToBuffer([recipient], randomBytes(100)), NOW);
    expect(store.list().map((o) => o.objectId)).toEqual([snap.objectId, objectId]);
    expect(store.list({ order: 'oldest', limit: 1 }).map((o) => o.objectId)).toEqual([objectId]);
    expect(store.list({ before: NOW }).map((o) => o.objectId)).toEqual([objectId]);
    expect(store.list({ kind: 'snapshot' })).toEqual([]);
    expect(store.list({ cameraId: 'back' })).toEqual([]);
    expect(store.count()).toBe(2);
    expect(store.totalBytes()).toBe(stored.bytes + snap.bytes);

    expect(store.delete(objectId)).toBe(true);
    expect(store.delete(objectId)).toBe(false);
    expect(store.delete('../../etc/passwd')).toBe(false);
    expect(existsSync(stored.path)).toBe(false);
    expect(store.get(objectId)).toBeUndefined();
    expect(thrown(() => store.openRead(objectId)).code).toBe('CAMVEIL_E_STORE_NOT_FOUND');
    expect(store.count()).toBe(1);
  });

  it('refuses bytes that are not age ciphertext, keeping no file and no row', async () => {
    const store = openStore();
    const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(4096)]);
    const objectId = newObjectId();
    await expect(store.put({ objectId, kind: 'snapshot', capturedAt: NOW, body: Readable.from([jpeg]) })).rejects.toMatchObject({
      code: 'CAMVEIL_E_STORE_NOT_CIPHERTEXT',
    });
    // A prefix of the magic line split over chunks, and a body shorter than it.
    const sneaky = [Buffer.from('age-encr'), Buffer.from('yption.org/v2\n'), randomBytes(100)];
    await expect(store.put({ objectId, kind: 'snapshot', capturedAt: NOW, body: Readable.from(sneaky) })).rejects.toMatchObject({
      code: 'CAMVEIL_E_STORE_NOT_CIPHERTEXT',
    });
    await expect(store.put({ objectId, kind: 'snapshot', capturedAt: NOW, body: Readable.from([Buffer.from('age-')]) })).rejects.toMatchObject({
      code: 'CAMVEIL_E_STORE_NOT_CIPHERTEXT',
    });
    expect(objectFiles()).toEqual([]);
    expect(store.count()).toBe(0);
  });

  it('accepts the magic line split across chunks', async () => {
    const store = openStore();
    const ciphertext = await encryptToBuffer([recipient], randomBytes(1000));
    const chunks = [...ciphertext].map((b) => Buffer.from([b]));
    const stored = await store.put({ objectId: newObjectId(), kind: 'event', capturedAt: NOW, body: Readable.from(chunks) });
    expect(readFileSync(stored.path).equals(ciphertext)).toBe(true);
  });

  it('keeps nothing when the body stream errors or is destroyed midway', async () => {
    const store = openStore();
    const ciphertext = await encryptToBuffer([recipient], randomBytes(256 * 1024));
    for (const ending of ['error', 'destroy'] as const) {
      const body = new PassThrough();
      const put = store.put({ objectId: newObjectId(), kind: 'clip', capturedAt: NOW, body });
      body.write(ciphertext.subarray(0, 100 * 1024));
      await new Promise((r) => setTimeout(r, 20));
      expect(objectFiles()).toHaveLength(1); // the .tmp file exists mid-write
      if (ending === 'error') body.destroy(new Error('camera went away'));
      else body.destroy();
      await expect(put).rejects.toMatchObject({ code: 'CAMVEIL_E_STORE_WRITE_FAILED' });
      expect(objectFiles()).toEqual([]);
      expect(store.count()).toBe(0);
    }
  });

  it('refuses an id that is malformed or already stored, without touching the stored file', async () => {
    const store = openStore();
    const ciphertext = await encryptToBuffer([recipient], randomBytes(100));
    const first = await putBytes(store, ciphertext, NOW);
    await expect(putBytes(store, randomBytes(10), NOW, first.objectId)).rejects.toMatchObject({ code: 'CAMVEIL_E_STORE_WRITE_FAILED' });
    await expect(putBytes(store, ciphertext, NOW, '../escape')).rejects.toMatchObject({ code: 'CAMVEIL_E_STORE_WRITE_FAILED' });
    expect(readFileSync(first.path).equals(ciphertext)).toBe(true);
  });

  it('recover() removes tmp files and unindexed .age files and drops rows whose file is missing', async () => {
    const store = openStore();
    const ciphertext = await encryptToBuffer([recipient], randomBytes(100));
    const kept = await putBytes(store, ciphertext, NOW);
    const lost = await putBytes(store, ciphertext, NOW);
    rmSync(lost.path);
    const orphan = newObjectId();
    writeFileSync(join(store.dir, `${orphan}.age`), ciphertext);
    writeFileSync(join(store.dir, `${newObjectId()}.age.tmp`), ciphertext.subarray(0, 50));
    expect(store.recover()).toEqual({ tmpRemoved: 1, unindexedRemoved: 1, missingFiles: 1 });
    expect(objectFiles()).toEqual([`${kept.objectId}.age`]);
    expect(store.list().map((o) => o.objectId)).toEqual([kept.objectId]);
    expect(store.recover()).toEqual({ tmpRemoved: 0, unindexedRemoved: 0, missingFiles: 0 });
    // open() runs recover() too.
    writeFileSync(join(store.dir, `${newObjectId()}.age.tmp`), ciphertext);
    openStore();
    expect(objectFiles()).toEqual([`${kept.objectId}.age`]);
  });

  it('reports a disk failure as a write failure and removes only what it created', async () => {
    const store = openStore();
    const objectId = newObjectId();
    // A directory where the temp file should go: opening it fails the way a full or broken disk would (root included).
    mkdirSync(join(store.dir, `${objectId}.age.tmp`));
    await expect(putBytes(store, await encryptToBuffer([recipient], randomBytes(10)), NOW, objectId)).rejects.toMatchObject({
      code: 'CAMVEIL_E_STORE_WRITE_FAILED',
    });
    expect(objectFiles()).toEqual([`${objectId}.age.tmp`]);
    expect(store.count()).toBe(0);
  });

  it('indexes events and updates their end', () => {
    const store = openStore();
    store.recordEvent({ eventId: 'e1', cameraId: 'front', kind: 'motion', startedAt: NOW - 5000 });
    store.recordEvent({ eventId: 'e2', cameraId: 'back', kind: 'motion', startedAt: NOW - 1000 });
    store.recordEvent({ eventId: 'e1', cameraId: 'front', kind: 'motion', startedAt: NOW - 5000, endedAt: NOW - 4000 });
    store.recordEvent({ eventId: 'e1', cameraId: 'front', kind: 'motion', startedAt: NOW - 5000 });
    expect(store.listEvents()).toEqual([
      { eventId: 'e2', cameraId: 'back', kind: 'motion', startedAt: NOW - 1000 },
      { eventId: 'e1', cameraId: 'front', kind: 'motion', startedAt: NOW - 5000, endedAt: NOW - 4000 },
    ]);
    expect(store.listEvents({ cameraId: 'front' }).map((e) => e.eventId)).toEqual(['e1']);
    expect(store.listEvents({ before: NOW - 1000 }).map((e) => e.eventId)).toEqual(['e1']);
  });
});

describe('retention', () => {
  let ciphertext: Buffer;
  beforeAll(async () => {
    ciphertext = await encryptToBuffer([recipient], randomBytes(1000));
  });

  it('deletes objects older than the retention days first, then old events without objects', async () => {
    const store = openStore();
    const old = await putBytes(store, ciphertext, NOW - 8 * DAY);
    const recent = await putBytes(store, ciphertext, NOW - 6 * DAY);
    store.recordEvent({ eventId: 'old', cameraId: 'front', kind: 'motion', startedAt: NOW - 9 * DAY, endedAt: NOW - 9 * DAY });
    store.recordEvent({ eventId: 'new', cameraId: 'front', kind: 'motion', startedAt: NOW - DAY });
    const result = applyRetention(store, { retentionDays: 7, quotaBytes: 1e9, now: NOW });
    expect(result).toMatchObject({ deletedForAge: 1, deletedForQuota: 0, bytesFreed: old.bytes });
    expect(store.list().map((o) => o.objectId)).toEqual([recent.objectId]);
    expect(existsSync(old.path)).toBe(false);
    expect(store.listEvents().map((e) => e.eventId)).toEqual(['new']);
  });

  it('property: after a run the total is within quota and the young objects stored last remain', async () => {
    const size = ciphertext.length;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 20 * DAY }), { minLength: 0, maxLength: 12 }),
        fc.integer({ min: 0, max: 14 * size }),
        fc.integer({ min: 1, max: 30 }),
        async (ages, quotaBytes, retentionDays) => {
          for (const o of openStore().list({ limit: 1000 })) openStore().delete(o.objectId);
          const store = openStore();
          for (const age of ages) await putBytes(store, ciphertext, NOW - age);
          applyRetention(store, { retentionDays, quotaBytes, now: NOW });
          expect(store.totalBytes()).toBeLessThanOrEqual(quotaBytes);
          const young = ages.filter((a) => a <= retentionDays * DAY).length;
          const expected = Math.min(young, Math.floor(quotaBytes / size));
          expect(store.count()).toBe(expected);
          // The quota takes the objects stored first, whatever their capture times say.
          const kept = store.list({ order: 'stored', limit: 1000 });
          const youngInOrder = ages.filter((a) => a <= retentionDays * DAY);
          expect(kept.map((o) => NOW - o.capturedAt)).toEqual(youngInOrder.slice(youngInOrder.length - expected));
          expect(objectFiles()).toHaveLength(expected);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('put makes room within the quota by evicting the oldest objects, never the new one', async () => {
    const size = ciphertext.length;
    const store = openStore({ retention: { retentionDays: 30, quotaBytes: 3 * size } });
    const a = await putBytes(store, ciphertext, NOW - 3000);
    const b = await putBytes(store, ciphertext, NOW - 2000);
    const c = await putBytes(store, ciphertext, NOW - 1000);
    // Older than everything stored, still kept: the object being committed is never the one evicted.
    const d = await putBytes(store, ciphertext, NOW - 9000);
    expect(store.list({ limit: 10 }).map((o) => o.objectId)).toEqual([c.objectId, b.objectId, d.objectId]);
    expect(existsSync(a.path)).toBe(false);
    expect(store.totalBytes()).toBe(3 * size);
    await expect(putBytes(store, Buffer.concat([ciphertext, ciphertext, ciphertext, Buffer.from('x')]), NOW)).rejects.toMatchObject({
      code: 'CAMVEIL_E_STORE_QUOTA',
    });
    expect(store.count()).toBe(3);
    expect(objectFiles()).toHaveLength(3);
  });

  it('quota eviction follows the order of storing: after the clock steps back an hour, the newest objects stay though their capture times are the earliest', async () => {
    const size = ciphertext.length;
    const HOUR = 3_600_000;
    const store = openStore({ retention: { retentionDays: 30, quotaBytes: 4 * size } });
    const before = [];
    for (let i = 0; i < 3; i++) before.push(await putBytes(store, ciphertext, NOW + i * 1000));
    // The wall clock goes back an hour: what is captured now has the smallest capture times in the store.
    const after = [];
    for (let i = 0; i < 3; i++) after.push(await putBytes(store, ciphertext, NOW - HOUR + i * 1000));
    const ids = (objects: Array<{ objectId: string }>) => objects.map((o) => o.objectId);
    // Making room for each new object took the ones stored first.
    expect(ids(store.list({ order: 'stored', limit: 10 }))).toEqual([before[2]!.objectId, ...ids(after)]);
    // The retention timer's run does the same.
    const run = applyRetention(store, { retentionDays: 30, quotaBytes: 2 * size, now: NOW - HOUR + 3000 });
    expect(run).toMatchObject({ deletedForAge: 0, deletedForQuota: 2 });
    expect(ids(store.list({ order: 'stored', limit: 10 }))).toEqual(ids(after.slice(1)));
    // Age still goes by capture time (wall time, as documented): the cutoff deletes by it.
    expect(store.list({ order: 'oldest', limit: 1 })[0]!.objectId).toBe(after[1]!.objectId);
  });
});
