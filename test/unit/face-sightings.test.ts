import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrolmentStore } from '../../src/analysis/faces/enrolment.js';
import { purgeAfterWithdrawal } from '../../src/analysis/faces/withdrawal-purge.js';
import { FaceEngine, type Face } from '../../src/analysis/faces/face-engine.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { newSightingId, SightingStore, startSightingRetention } from '../../src/analysis/faces/sightings.js';
import { runConsent } from '../../src/commands/consent.js';
import { runDataDelete } from '../../src/commands/data.js';
import { runFacesAddPhotos, runFacesCorrect, runFacesEnrol, runFacesList, runFacesSightings } from '../../src/commands/faces-enrol.js';
import { openHubContext } from '../../src/commands/hub-context.js';
import type { CommandIO } from '../../src/commands/io.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { CamveilError } from '../../src/errors.js';
import { cropOf, DEMO, testHub } from './face-fixtures.js';

let engine: FaceEngine;
let dir: string;
let crop: string;
let crop2: string;
let other: string;
let blank: string;
let faces1: Face[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'camveil-sightings-'));
  engine = await FaceEngine.open();
  faces1 = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
  crop = join(dir, 'a.jpg');
  crop2 = join(dir, 'a-tight.jpg');
  other = join(dir, 'b.jpg');
  await cropOf(faces1[0]!, crop);
  await cropOf(faces1[0]!, crop2, 0.3);
  await cropOf(faces1[1]!, other);
  blank = join(dir, 'wall.png');
  await sharp({ create: { width: 400, height: 300, channels: 3, background: { r: 200, g: 180, b: 150 } } }).png().toFile(blank);
});

afterAll(async () => {
  engine.unload();
  await rm(dir, { recursive: true, force: true });
});

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
}

/** The database files' bytes after a checkpoint (main file and WAL). */
function dbBytes(hub: ReturnType<typeof testHub>): Buffer[] {
  hub.db.pragma('wal_checkpoint(TRUNCATE)');
  return readdirSync(hub.dataDir)
    .filter((n) => n.startsWith('camveil.db'))
    .map((f) => readFileSync(join(hub.dataDir, f)));
}

const descriptor = (seed: number): Float32Array => Float32Array.from({ length: 128 }, (_, i) => Math.sin(seed * 1000 + i) / 10);

async function storeFor(hub: ReturnType<typeof testHub>) {
  return new EnrolmentStore({ db: hub.db, hub: await loadOrCreateHubKeys(hub.dataDir), audit: hub.audit, policyVersion: hub.policyVersion, ledger: hub.ledger });
}

describe('sighting store', () => {
  it('keeps only the sighting id, camera and time in clear; who, which event and the descriptor only sealed to the hub', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      const d = descriptor(1);
      const id = newSightingId();
      expect(id).toMatch(/^sight_[a-z2-7]{16}$/);
      await store.sightings.record({ sightingId: id, cameraId: 'front', eventId: 'evt-9', at: 1_700_000_000_000, label: 'known', personId: 'person_aaaaaaaaaaaaaaaa', descriptor: d });
      expect(await store.sightings.list()).toEqual([{ sightingId: id, cameraId: 'front', eventId: 'evt-9', at: 1_700_000_000_000, label: 'known', personId: 'person_aaaaaaaaaaaaaaaa' }]);
      expect((await store.sightings.get(id)).descriptor).toEqual(d);
      const raw = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      for (const bytes of dbBytes(hub)) {
        expect(bytes.includes(raw.subarray(0, 32))).toBe(false);
        expect(bytes.includes(raw.toString('base64').slice(0, 40))).toBe(false);
        // No person → event link in clear: neither id is in the database file.
        expect(bytes.includes('person_aaaaaaaaaaaaaaaa')).toBe(false);
        expect(bytes.includes('evt-9')).toBe(false);
      }
      // The person's sightings still go with the person, found by the keyed tag.
      expect(store.sightings.deleteForPeople(['person_bbbbbbbbbbbbbbbb'])).toBe(0);
      expect(store.sightings.deleteForPeople(['person_aaaaaaaaaaaaaaaa'])).toBe(1);
      await store.sightings.record({ sightingId: id, cameraId: 'front', eventId: 'evt-9', at: 1_700_000_000_000, label: 'known', personId: 'person_aaaaaaaaaaaaaaaa', descriptor: d });
      await expect(store.sightings.get('sight_aaaaaaaaaaaaaaaa')).rejects.toMatchObject({ code: 'CAMVEIL_E_SIGHTING_NOT_FOUND' });
    } finally {
      hub.close();
    }
  });

  it('retention: older than the period deleted at start and by the timer; a person deleted takes their known sightings only', async () => {
    const hub = testHub();
    try {
      const keys = await loadOrCreateHubKeys(hub.dataDir);
      let now = Date.UTC(2026, 10, 23);
      const sightings = new SightingStore({ db: hub.db, hub: keys, now: () => now });
      const day = 86_400_000;
      for (const [age, label] of [[10, 'unknown'], [8, 'unknown'], [6, 'unknown'], [1, 'unknown']] as const) {
        await sightings.record({ sightingId: newSightingId(), cameraId: 'front', at: now - age * day, label, descriptor: descriptor(age) });
      }
      const deleted: number[] = [];
      const stop = startSightingRetention(sightings, () => 7, (n) => deleted.push(n), () => undefined, 20);
      try {
        expect(deleted).toEqual([2]);
        expect(sightings.count()).toBe(2);
        now += 2 * day; // the 6-day-old one is now 8 days old
        await new Promise((r) => setTimeout(r, 80));
        expect(deleted).toEqual([2, 1]);
        expect(sightings.count()).toBe(1);
      } finally {
        stop();
      }

      const store = await storeFor(hub);
      const a = await store.enrol(engine, { name: 'A', photos: [crop], minor: false });
      const b = await store.enrol(engine, { name: 'B', photos: [other], minor: false });
      for (const p of [a, a, b]) await store.sightings.record({ sightingId: newSightingId(), cameraId: 'front', at: Date.now(), label: 'known', personId: p.personId, descriptor: descriptor(3) });
      expect(store.sightings.count()).toBe(4);
      store.delete(a.personId);
      expect((await store.sightings.list()).map((s) => s.personId ?? 'unknown').sort()).toEqual([b.personId, 'unknown'].sort());
    } finally {
      hub.close();
    }
  });

  it('a faceRecognition withdrawal deletes every sighting, known or unknown', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      hub.acceptAndGrant();
      const a = await store.enrol(engine, { name: 'A', photos: [crop], minor: false });
      await store.sightings.record({ sightingId: newSightingId(), cameraId: 'front', at: Date.now(), label: 'known', personId: a.personId, descriptor: descriptor(1) });
      await store.sightings.record({ sightingId: newSightingId(), cameraId: 'front', at: Date.now(), label: 'unknown', descriptor: descriptor(2) });
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(0);
      expect(store.sightings.count()).toBe(2);
      hub.withdraw();
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(1);
      expect(store.sightings.count()).toBe(0);
    } finally {
      hub.close();
    }
  });
});

describe('adding photos and keeping photos', () => {
  it('photos are not kept by default: the database never holds the JPEG bytes; with keepPhotos they are kept sealed, counted, deleted with the person', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      const jpeg = readFileSync(crop);
      const probe = jpeg.subarray(600, 664);
      const a = await store.enrol(engine, { name: 'A', photos: [crop], minor: false });
      expect(a.photosKept).toBe(0);
      for (const bytes of dbBytes(hub)) expect(bytes.includes(probe)).toBe(false);
      expect(hub.db.prepare('SELECT count(*) AS n FROM faces_photos').get()).toEqual({ n: 0 });

      const added = await store.addPhotos(engine, a.personId, [crop2], { keepPhotos: true });
      expect(added).toMatchObject({ personId: a.personId, templates: 2, photosKept: 1 });
      expect((await store.load())[0]!.templates).toHaveLength(2);
      const rows = hub.db.prepare<[], { sealed: Buffer }>('SELECT sealed FROM faces_photos').all();
      expect(rows).toHaveLength(1);
      const keys = await loadOrCreateHubKeys(hub.dataDir);
      expect(await decryptToBuffer(keys.identity, rows[0]!.sealed)).toEqual(readFileSync(crop2));
      const probe2 = readFileSync(crop2).subarray(600, 664);
      for (const bytes of dbBytes(hub)) expect(bytes.includes(probe2)).toBe(false);
      expect(hub.audit.entries().filter((e) => e.type === 'face.templates').map((e) => e.details)).toEqual([
        { subject: a.personId, change: 'photos-added', count: 1, kept: 1, policyVersion: hub.policyVersion },
      ]);

      const b = await store.enrol(engine, { name: 'B', photos: [other], minor: false, keepPhotos: true });
      expect((await store.list()).map((p) => p.photosKept)).toEqual([1, 1]);
      store.delete(a.personId);
      expect(hub.db.prepare('SELECT person_id FROM faces_photos').all()).toEqual([{ person_id: b.personId }]);
    } finally {
      hub.close();
    }
  });

  it('all or nothing: one photo without a usable face adds nothing (no template, no kept photo, same revision)', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      const a = await store.enrol(engine, { name: 'A', photos: [crop], minor: false });
      const revision = store.revision();
      const e = await store.addPhotos(engine, a.personId, [crop2, blank], { keepPhotos: true }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(e).toBeInstanceOf(CamveilError);
      expect((e as CamveilError).code).toBe('CAMVEIL_E_NO_FACE');
      expect((e as CamveilError).message).toMatch(/^photo 2 /);
      await expect(store.addPhotos(engine, a.personId, [join(DEMO, 'sample1.jpg')])).rejects.toMatchObject({ code: 'CAMVEIL_E_SEVERAL_FACES' });
      await expect(store.addPhotos(engine, 'person_aaaaaaaaaaaaaaaa', [crop2])).rejects.toMatchObject({ code: 'CAMVEIL_E_PERSON_NOT_FOUND' });
      expect(store.revision()).toBe(revision);
      expect((await store.list())[0]).toMatchObject({ templates: 1, photosKept: 0 });
      expect(hub.db.prepare('SELECT count(*) AS n FROM faces_photos').get()).toEqual({ n: 0 });
    } finally {
      hub.close();
    }
  });
});

describe('faces sightings / correct / add-photos commands, and data delete', () => {
  it('through the hub database named by a config file', async () => {
    const hub = testHub();
    hub.db.close();
    const config = join(dir, 'camveil.yaml');
    writeFileSync(config, `hub:\n  id: test-hub\n  region: DE\ndataDir: ${hub.dataDir}\ncameras: []\n`);
    await runConsent({ kind: 'accept-policy', version: '2021-10-31' }, { config }, capture());
    await runConsent({ kind: 'grant', consent: 'faceRecognition' }, { config }, capture());
    const enrolled = capture();
    expect(await runFacesEnrol({ config, name: 'A', photos: [crop], engine, keepPhotos: true, json: true }, enrolled), enrolled.err.join('')).toBe(0);
    const personId = (JSON.parse(enrolled.out.join('')) as { personId: string; photosKept: number }).personId;
    expect(JSON.parse(enrolled.out.join(''))).toMatchObject({ photosKept: 1 });

    const known = newSightingId();
    const stranger = newSightingId();
    const ctx = await openHubContext(config);
    await ctx.people.sightings.record({ sightingId: known, cameraId: 'porch', eventId: 'evt-1', at: Date.now() - 1000, label: 'known', personId, descriptor: descriptor(1) });
    await ctx.people.sightings.record({ sightingId: stranger, cameraId: 'porch', at: Date.now(), label: 'unknown', descriptor: descriptor(2) });
    ctx.close();

    const listed = capture();
    expect(await runFacesSightings({ config, json: true }, listed)).toBe(0);
    const { sightings } = JSON.parse(listed.out.join('')) as { sightings: Array<Record<string, unknown>> };
    expect(sightings.map((s) => s.sightingId)).toEqual([stranger, known]);
    expect(sightings[1]).toEqual({ sightingId: known, cameraId: 'porch', eventId: 'evt-1', at: expect.any(Number) as number, label: 'known', personId });
    expect(listed.out.join('')).not.toMatch(/descriptor|sealed/);
    const text = capture();
    await runFacesSightings({ config }, text);
    expect(text.out[0]).toBe('2 sighting(s)');

    const both = capture();
    expect(await runFacesCorrect({ config, sightingId: stranger, is: personId, not: personId }, both)).toBe(2);
    expect(both.err.join('')).toContain('CAMVEIL_E_USAGE');
    const missing = capture();
    expect(await runFacesCorrect({ config, sightingId: 'sight_aaaaaaaaaaaaaaaa', not: personId }, missing)).toBe(1);
    expect(missing.err.join('')).toContain('CAMVEIL_E_SIGHTING_NOT_FOUND');
    const corrected = capture();
    expect(await runFacesCorrect({ config, sightingId: stranger, not: personId }, corrected), corrected.err.join('')).toBe(0);
    expect(corrected.out.join('')).toContain('is not');

    const several = capture();
    expect(await runFacesAddPhotos({ config, personId, photos: [crop2, join(DEMO, 'sample1.jpg')], engine }, several)).toBe(2);
    expect(several.err.join('')).toContain('CAMVEIL_E_SEVERAL_FACES');
    const added = capture();
    expect(await runFacesAddPhotos({ config, personId, photos: [crop2], engine, json: true }, added), added.err.join('')).toBe(0);
    expect(JSON.parse(added.out.join(''))).toEqual({ personId, templates: 2, photosKept: 1 });
    const people = capture();
    await runFacesList({ config, json: true }, people);
    expect(JSON.parse(people.out.join(''))).toMatchObject({ people: [{ personId, templates: 2, negatives: 1, photosKept: 1 }] });

    // `data delete` takes people, kept photos and every sighting.
    expect(await runDataDelete({ config, yes: true }, capture())).toBe(0);
    const after = await openHubContext(config);
    try {
      expect(after.people.count()).toBe(0);
      expect(after.people.sightings.count()).toBe(0);
      expect(after.db.prepare('SELECT count(*) AS n FROM faces_photos').get()).toEqual({ n: 0 });
    } finally {
      after.close();
    }
    hub.close();
  });
});
