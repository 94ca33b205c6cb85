import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrolmentStore } from '../../src/analysis/faces/enrolment.js';
import { FaceEngine } from '../../src/analysis/faces/face-engine.js';
import { FaceStage } from '../../src/analysis/faces/face-stage.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { FaceMatcher, nearestPerson } from '../../src/analysis/faces/matcher.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { EventBus, type CamveilEvents } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { cropOf, DEMO, frameOf, testHub } from './face-fixtures.js';

/** A unit vector along axis `i` (128-D), scaled: distances between them are easy to reason about. */
function axis(i: number, scale = 1): Float32Array {
  const v = new Float32Array(128);
  v[i] = scale;
  return v;
}

describe('matcher (pure)', () => {
  const people = [
    { personId: 'person_aaaaaaaaaaaaaaaa', templates: [axis(0)] },
    { personId: 'person_bbbbbbbbbbbbbbbb', templates: [axis(1), axis(2)] },
  ];

  it('nearest template below the threshold, else undefined', () => {
    expect(nearestPerson(axis(0, 0.8), people)).toEqual({ personId: 'person_aaaaaaaaaaaaaaaa', distance: expect.closeTo(0.2, 5) as number });
    expect(nearestPerson(axis(2, 1.3), people)?.personId).toBe('person_bbbbbbbbbbbbbbbb');
    expect(nearestPerson(axis(3), people)).toBeUndefined();
    expect(nearestPerson(axis(0, 0.45), people)).toBeUndefined(); // 0.55 away: not below 0.55
  });

  it('reports a person only after 2 of the last 3 frames within 10 s, then not again for a minute', () => {
    const m = new FaceMatcher();
    m.setPeople(people);
    const a = axis(0, 0.9);
    // The confirming descriptor comes with each sighting (kept for corrections).
    const d = expect.any(Float32Array) as Float32Array;
    expect(m.observe('front', 0, [a])).toEqual([]);
    expect(m.observe('front', 500, [])).toEqual([]);
    expect(m.observe('front', 1000, [a])).toEqual([{ kind: 'known', personId: 'person_aaaaaaaaaaaaaaaa', distance: expect.closeTo(0.1, 5) as number, descriptor: d }]);
    expect(m.observe('front', 1500, [a])).toEqual([]);
    expect(m.observe('front', 62_000, [a])).toEqual([]); // history too old: one frame again
    expect(m.observe('front', 62_500, [a])).toHaveLength(1);
  });

  it('frames further apart than the window do not confirm; cameras are separate; unknown faces are confirmed the same way', () => {
    const m = new FaceMatcher();
    m.setPeople(people);
    expect(m.observe('front', 0, [axis(0)])).toEqual([]);
    expect(m.observe('front', 10_001, [axis(0)])).toEqual([]);
    expect(m.observe('back', 10_002, [axis(0)])).toEqual([]);
    expect(m.observe('back', 10_500, [axis(5)])).toEqual([]);
    expect(m.observe('back', 11_000, [axis(6)])).toEqual([{ kind: 'unknown', descriptor: axis(6) }]);
    // 1 of the last 3 only: the oldest of 3 frames dropped out.
    const n = new FaceMatcher();
    n.setPeople(people);
    n.observe('front', 0, [axis(1)]);
    n.observe('front', 100, []);
    n.observe('front', 200, []);
    expect(n.observe('front', 300, [axis(1)])).toEqual([]);
  });
});

describe('recognition with real photos through the face stage', () => {
  let dir: string;
  let engine: FaceEngine;
  let hub: ReturnType<typeof testHub>;
  let store: EnrolmentStore;
  let personId: string;
  let others: Array<{ personId: string; distance: number } | undefined>;
  let self: { personId: string; distance: number } | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camveil-match-'));
    engine = await FaceEngine.open();
    const faces = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
    const crop = join(dir, 'enrol.jpg');
    await cropOf(faces[0]!, crop);
    hub = testHub();
    hub.acceptAndGrant();
    store = new EnrolmentStore({ db: hub.db, hub: await loadOrCreateHubKeys(hub.dataDir), audit: hub.audit, policyVersion: hub.policyVersion });
    personId = (await store.enrol(engine, { name: 'Ann', photos: [crop], minor: false })).personId;
    const people = await store.load();
    const sample1 = await readImageFile(join(DEMO, 'sample1.jpg'));
    const sample5 = await readImageFile(join(DEMO, 'sample5.jpg'));
    const faces5 = await engine.detect(sample5);
    self = nearestPerson(await engine.describe(sample1, faces[0]!), people);
    others = [];
    for (const f of faces.slice(1)) others.push(nearestPerson(await engine.describe(sample1, f), people));
    for (const f of faces5) others.push(nearestPerson(await engine.describe(sample5, f), people));
    engine.unload();
  });

  afterAll(async () => {
    hub.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('every other face in the demo photos (2 + 5 people) is farther than the threshold from the enrolled template', () => {
    expect(self?.personId).toBe(personId);
    expect(others).toHaveLength(7);
    expect(others.every((o) => o === undefined)).toBe(true);
  });

  it('the enrolled person is recognised in rescaled, recompressed, brightened frames; the others are unknown', async () => {
    const bus = new EventBus();
    const stage = new FaceStage({ gate: hub.gate, cameraIds: () => ['front'], bus, logger: silentLogger(), cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa', people: store });
    const known: Array<CamveilEvents['face.known']> = [];
    const unknown: Array<CamveilEvents['face.unknown']> = [];
    bus.on('face.known', (e) => known.push(e));
    bus.on('face.unknown', (e) => unknown.push(e));
    try {
      const t0 = Date.now();
      const photo = join(DEMO, 'sample1.jpg');
      const { width = 0, height = 0 } = await sharp(photo).metadata();
      const padX = Math.round(width * 0.1);
      const padY = Math.round(height * 0.1);
      const variants = [
        // brightened and recompressed hard
        await frameOf(sharp(await sharp(photo).modulate({ brightness: 1.35 }).jpeg({ quality: 30 }).toBuffer()), 'front', t0),
        // shrunk to 80 % inside a black border, recompressed
        await frameOf(
          sharp(await sharp(photo).resize(width - 2 * padX, height - 2 * padY).extend({ top: padY, bottom: padY, left: padX, right: padX, background: '#000' }).jpeg({ quality: 50 }).toBuffer()),
          'front',
          t0 + 500,
        ),
        // darker, recompressed
        await frameOf(sharp(await sharp(photo).modulate({ brightness: 0.8 }).jpeg({ quality: 60 }).toBuffer()), 'front', t0 + 1000),
      ];
      for (const frame of variants) {
        stage.offer({ cameraId: 'front', frame, motion: true });
        await stage.idle();
      }
      expect(stage.stats().framesAnalysed).toBe(3);
      expect(known).toHaveLength(1);
      expect(known[0]).toMatchObject({ cameraId: 'front', personId });
      expect(known[0]!.distance).toBeLessThan(0.55);
      expect(unknown).toHaveLength(1); // the two other women, confirmed once and not repeated within a minute

      // Five other people: nobody is matched.
      const others = new FaceStage({ gate: hub.gate, cameraIds: () => ['front'], bus, logger: silentLogger(), cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa', people: store });
      try {
        for (let i = 0; i < 3; i++) {
          others.offer({ cameraId: 'front', frame: await frameOf(join(DEMO, 'sample5.jpg'), 'front', t0 + 2000 + 500 * i), motion: true });
          await others.idle();
        }
        expect(others.stats().describeCalls).toBeGreaterThanOrEqual(3);
        expect(known).toHaveLength(1);
        expect(others.stats().unknown).toBe(1);
      } finally {
        await others.stop();
      }
      console.log(`recognised at distance ${known[0]!.distance.toFixed(3)}`);
    } finally {
      await stage.stop();
    }
  });
});
