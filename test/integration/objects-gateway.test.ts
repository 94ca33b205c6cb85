import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { rulesFor, type MatchedRegionRule } from '../../src/policy/region-rules.js';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { defaultModelDir } from '../../src/analysis/model-files.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { walkVideo } from '../harness/object-video.js';
import { describeWithPeers } from '../harness/peers.js';
import { waitFor } from '../harness/wait.js';

const ANALYSIS = { fps: 2, width: 640, height: 360 };
/** The person walks through between these seconds of a 24 s video the camera loops. */
const ENTER = 2;
const LEAVE = 10;
const LONG = 180_000;

interface Hub {
  gateway: Gateway;
  policyVersion: string;
  sink: CapturingSink;
  confirmed: Array<CamveilEvents['object.confirmed']>;
  motionEnds: Array<CamveilEvents['motion.end']>;
  incidents: Array<CamveilEvents['incident']>;
  stop(): Promise<void>;
}

/** A gateway with one camera looping `video`, its media captured in memory. `camera` is merged into the camera's config. */
async function startHub(
  root: string,
  name: string,
  video: string,
  camera: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
  options: { rulesFor?: (region: string) => MatchedRegionRule } = {},
): Promise<Hub> {
  const config = validateConfig(
    {
      hub: { id: `objects-${name}`, region: 'DE' },
      dataDir: path.join(root, name),
      cameras: [{ id: 'garden', source: `file:${video}`, analysis: ANALYSIS, ...camera }],
      recording: { preRollSeconds: 1, postRollSeconds: 2, maxClipSeconds: 30 },
      ...extra,
    },
    'objects test config',
    root,
  );
  const sink = new CapturingSink();
  const gateway = new Gateway({ config, logger: silentLogger(), sink, ...options });
  const hub: Hub = { gateway, policyVersion: config.privacy.policyVersion, sink, confirmed: [], motionEnds: [], incidents: [], stop: () => gateway.stop() };
  gateway.bus.on('object.confirmed', (e) => hub.confirmed.push(e));
  gateway.bus.on('motion.end', (e) => hub.motionEnds.push(e));
  gateway.bus.on('incident', (e) => hub.incidents.push(e));
  await gateway.start();
  return hub;
}

/** Mean RGB of a box of a JPEG. */
async function meanColour(jpeg: Buffer, box: { x: number; y: number; width: number; height: number }): Promise<number[]> {
  const { data, info } = await sharp(jpeg)
    .extract({ left: Math.max(0, Math.round(box.x)), top: Math.max(0, Math.round(box.y)), width: Math.max(1, Math.round(box.width)), height: Math.max(1, Math.round(box.height)) })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += info.channels) for (let c = 0; c < 3; c++) sum[c]! += data[i + c]!;
  return sum.map((v) => v / (data.length / info.channels));
}

describeWithPeers(['ffmpeg'], 'objects on the hub: people found where things move, on real video and the real model', () => {
  let root: string;
  let walk: string;
  let walkWithBox: string;
  let drive: string;

  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-objects-'));
    walk = walkVideo({ seconds: 24, enterAt: ENTER, leaveAt: LEAVE }).file;
    walkWithBox = walkVideo({ seconds: 24, enterAt: ENTER, leaveAt: LEAVE, bottomBox: true }).file;
    drive = walkVideo({ seconds: 24, enterAt: ENTER, leaveAt: LEAVE, sprite: 'car', personHeight: 0.25, top: 0.6 }).file;
  });

  afterAll(() => {
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('a person walking through is one confirmed person, one track, and the event says so; no consent is needed', async () => {
    const hub = await startHub(root, 'walk', walk);
    try {
      // The first event: the person's walk, ended when they have gone (motion stops, post-roll passes).
      await hub.sink.until((s) => s.clips.length >= 1, LONG);
      const clip = hub.sink.clips[0]!;
      const firstEnd = hub.motionEnds[0]!;
      const during = hub.confirmed.filter((e) => e.at <= firstEnd.at);
      expect(during.map((e) => e.label)).toEqual(['person']);
      expect(during[0]).toMatchObject({ cocoClass: 'person', eventId: clip.meta.eventId });
      expect(during[0]!.score).toBeGreaterThan(0.3);
      expect(new Set(during.map((e) => e.trackId)).size).toBe(1);

      // The event's record: what was seen, and the snapshot shows the person where the box says.
      expect(clip.objects?.labels).toEqual(['person']);
      expect(clip.objects?.scores.person).toBeGreaterThan(0.3);
      const shown = clip.objects?.snapshotObject;
      expect(shown?.label).toBe('person');
      const snapshot = hub.sink.snapshots.find((s) => s.eventId === clip.meta.eventId);
      expect(snapshot).toBeDefined();
      const inside = await meanColour(snapshot!.jpeg, shown!.box);
      // The background is a flat 0x6b7a70; the person's box is not.
      const background = [0x6b, 0x7a, 0x70];
      const distance = Math.hypot(...inside.map((v, i) => v - background[i]!));
      expect(distance).toBeGreaterThan(20);

      // Nothing was consented: objects identify no one and need no consent.
      expect(hub.gateway.consent.snapshot()).toMatchObject({ faceRecognition: false, cloudUpload: false });
      const stats = hub.gateway.objectStats()!;
      expect(stats.modelCalls).toBeGreaterThan(0);
      expect(stats.confirmed.person).toBeGreaterThanOrEqual(1);
    } finally {
      await hub.stop();
    }
  }, 240_000);

  it('a car driving through is a vehicle, and the face stage is never called, though faces are allowed', async () => {
    const hub = await startHub(root, 'car', drive, { faceRecognition: true }, { privacy: { faceCapableOverride: true } });
    try {
      const who = localRequest('objects test: faces allowed');
      await hub.gateway.consent.acceptPolicy(hub.policyVersion, who);
      await hub.gateway.consent.grant('faceRecognition', who);
      expect(hub.gateway.gate.mayRecogniseFaces('garden').allowed).toBe(true);
      await hub.sink.until((s) => s.clips.length >= 1, LONG);
      const firstEnd = hub.motionEnds[0]!;
      const during = hub.confirmed.filter((e) => e.at <= firstEnd.at);
      expect(during.map((e) => [e.label, e.cocoClass])).toEqual([['vehicle', 'car']]);
      expect(hub.sink.clips[0]!.objects?.labels).toEqual(['vehicle']);
      expect(hub.gateway.faceStats()!.framesOffered).toBe(0);
      expect(hub.gateway.faceStats()!.detectCalls).toBe(0);
    } finally {
      await hub.stop();
    }
  }, 240_000);

  it('a person behind a privacy mask is never detected, while motion elsewhere still reaches the model', async () => {
    // The mask covers the whole band the person walks through; the white square below it keeps moving.
    const band: Array<[number, number]> = [[0, 0.18], [1, 0.18], [1, 0.87], [0, 0.87]];
    const hub = await startHub(root, 'mask', walkWithBox, { privacyMasks: [band] });
    try {
      // Two full loops of the video: the person walked through twice.
      await waitFor('two loops of model calls', () => (hub.gateway.objectStats()?.framesAnalysed ?? 0) >= 2 * 24 * ANALYSIS.fps * 0.5, LONG);
      expect(hub.gateway.objectStats()!.modelCalls).toBeGreaterThan(0);
      expect(hub.confirmed.filter((e) => e.label === 'person')).toEqual([]);
    } finally {
      await hub.stop();
    }
  }, 240_000);

  it('withdrawing consent changes nothing for objects, but a region whose rules forbid them stops the model (and recording goes on)', async () => {
    const forbidding = (region: string) => ({ ...rulesFor(region), objectDetection: 'prohibited' as const });
    const hub = await startHub(root, 'region', walk, {}, {}, { rulesFor: forbidding });
    try {
      expect(hub.gateway.gate.mayDetectObjects('garden')).toEqual({ allowed: false, reason: 'region-prohibits-object-detection' });
      await hub.sink.until((s) => s.clips.length >= 1, LONG);
      expect(hub.gateway.objectStats()).toMatchObject({ modelCalls: 0, workersStarted: 0, framesAnalysed: 0 });
      expect(hub.confirmed).toEqual([]);
      expect(hub.sink.clips[0]!.objects).toBeUndefined();
    } finally {
      await hub.stop();
    }
    // The shipped rules, everything withdrawn that can be: people are still found.
    const withdrawn = await startHub(root, 'withdrawn', walk);
    try {
      const who = localRequest('objects test: consents withdrawn');
      await withdrawn.gateway.consent.acceptPolicy(withdrawn.policyVersion, who);
      for (const consent of ['faceRecognition', 'cloudUpload', 'localRecording'] as const) {
        await withdrawn.gateway.consent.grant(consent, who);
        await withdrawn.gateway.consent.withdraw(consent, who);
      }
      await withdrawn.sink.until((s) => s.clips.length >= 1, LONG);
      expect(withdrawn.confirmed.filter((e) => e.label === 'person').length).toBeGreaterThanOrEqual(1);
    } finally {
      await withdrawn.stop();
    }
  }, 480_000);

  it('a tampered model file is refused by name, the household is told, and the hub keeps recording', async () => {
    const dir = path.join(root, 'tampered-models');
    mkdirSync(dir);
    for (const f of readdirSync(defaultModelDir('objects'))) if (f.startsWith('centernet.')) copyFileSync(path.join(defaultModelDir('objects'), f), path.join(dir, f));
    const bin = readFileSync(path.join(dir, 'centernet.bin'));
    bin[1000] = bin[1000]! ^ 0xff;
    writeFileSync(path.join(dir, 'centernet.bin'), bin);
    const before = process.env.CAMVEIL_OBJECT_MODEL_DIR;
    process.env.CAMVEIL_OBJECT_MODEL_DIR = dir;
    const hub = await startHub(root, 'tampered', walk);
    try {
      await hub.sink.until((s) => s.clips.length >= 1, LONG);
      expect(hub.incidents.filter((i) => i.reason === 'model-tampered')).toHaveLength(1);
      expect(hub.incidents[0]!.detail).toContain('objects');
      expect(hub.gateway.objectStats()).toMatchObject({ modelCalls: 0, loaded: false });
      expect(hub.confirmed).toEqual([]);
    } finally {
      await hub.stop();
      if (before === undefined) delete process.env.CAMVEIL_OBJECT_MODEL_DIR;
      else process.env.CAMVEIL_OBJECT_MODEL_DIR = before;
    }
  }, 240_000);

  it('a class outside `track`, or outside its zone, raises nothing', async () => {
    const onlyVehicles = await startHub(root, 'track', walk, { objects: { track: ['vehicle'] } });
    try {
      await onlyVehicles.sink.until((s) => s.clips.length >= 1, LONG);
      expect(onlyVehicles.gateway.objectStats()!.modelCalls).toBeGreaterThan(0);
      expect(onlyVehicles.confirmed).toEqual([]);
      expect(onlyVehicles.sink.clips[0]!.objects?.labels).toEqual([]);
    } finally {
      await onlyVehicles.stop();
    }
    // People count only when they stand in the top strip, where nobody's feet ever are.
    const zoned = await startHub(root, 'zone', walk, { objects: { zones: { person: [[[0, 0], [1, 0], [1, 0.1], [0, 0.1]]] } } });
    try {
      await zoned.sink.until((s) => s.clips.length >= 1, LONG);
      expect(zoned.gateway.objectStats()!.modelCalls).toBeGreaterThan(0);
      expect(zoned.confirmed).toEqual([]);
    } finally {
      await zoned.stop();
    }
  }, 480_000);

  it('faces are looked for only on people: none on motion without a person, and in the person area when there is one', async () => {
    const consentedFaces = { privacy: { faceCapableOverride: true } };
    const grantFaces = async (hub: Hub) => {
      const who = localRequest('objects test: faces allowed');
      await hub.gateway.consent.acceptPolicy(hub.policyVersion, who);
      await hub.gateway.consent.grant('faceRecognition', who);
    };
    // Motion without any person (the person is masked out; the square moves): the face stage sees nothing.
    const band: Array<[number, number]> = [[0, 0.18], [1, 0.18], [1, 0.87], [0, 0.87]];
    const noPerson = await startHub(root, 'faces-none', walkWithBox, { privacyMasks: [band], faceRecognition: true }, consentedFaces);
    try {
      await grantFaces(noPerson);
      await waitFor('objects analysed frames with motion', () => (noPerson.gateway.objectStats()?.framesAnalysed ?? 0) >= 20, LONG);
      expect(noPerson.gateway.faceStats()!.framesOffered).toBe(0);
      expect(noPerson.gateway.faceStats()!.detectCalls).toBe(0);
    } finally {
      await noPerson.stop();
    }
    // The same motion with objects off: the face stage is offered every frame with motion, as before.
    const objectsOff = await startHub(root, 'faces-off', walkWithBox, { privacyMasks: [band], faceRecognition: true, objects: { enabled: false } }, consentedFaces);
    try {
      await grantFaces(objectsOff);
      await waitFor('the face stage offered frames', () => (objectsOff.gateway.faceStats()?.framesOffered ?? 0) >= 5, LONG);
      expect(objectsOff.gateway.objectStats()!.modelCalls).toBe(0);
    } finally {
      await objectsOff.stop();
    }
    // A person walking through: the face stage looks in the area around them.
    const person = await startHub(root, 'faces-person', walk, { faceRecognition: true }, consentedFaces);
    try {
      await grantFaces(person);
      await waitFor('the face stage looked around a person', () => (person.gateway.faceStats()?.framesAnalysed ?? 0) >= 2, LONG);
    } finally {
      await person.stop();
    }
    // Counted after the stop, when no frame is in flight: every frame the face stage analysed was a person area.
    const faces = person.gateway.faceStats()!;
    expect(faces.peopleCrops).toBe(faces.framesAnalysed);
    expect(faces.framesOffered).toBeLessThanOrEqual(person.gateway.objectStats()!.framesAnalysed);
  }, 600_000);
});
