import { readdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blurBoxes, bystanderBoxes } from '../../src/analysis/faces/bystander-blur.js';
import { FaceEngine, type FaceBox } from '../../src/analysis/faces/face-engine.js';
import { FaceStage } from '../../src/analysis/faces/face-stage.js';
import type { EnrolledPerson } from '../../src/analysis/faces/matcher.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';
import { CameraPipeline } from '../../src/cameras/camera-pipeline.js';
import { ffmpegMajorVersion, findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { cameraSchema, recordingSchema } from '../../src/config/schema.js';
import { EventBus } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { DEMO, frameOf, testHub } from './face-fixtures.js';

// Real nets (wasm) in the test process for the ground truth and the enrolment, a real worker in the stage,
// sample1.jpg (three women side by side) letterboxed to a 640×360 analysis frame.
const W = 640;
const H = 360;
let engine: FaceEngine;
let frame: AnalysisFrame;
/** The frame's faces, left to right. The leftmost is the one enrolled. */
let faces: FaceBox[];
let enrolled: EnrolledPerson;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  engine = await FaceEngine.open();
  frame = await frameOf(join(DEMO, 'sample1.jpg'));
  faces = (await engine.detect({ width: W, height: H, data: frame.data, channels: 3 }, { pad: 'never' })).map((f) => f.box).sort((a, b) => a.x - b.x);
  // Enrolled from a crop of the full-size photo (not from the frame), in memory, as the app's enrolment does.
  const photo = sharp(join(DEMO, 'sample1.jpg')).removeAlpha();
  const full = await photo.clone().raw().toBuffer({ resolveWithObject: true });
  const inPhoto = (await engine.detect({ width: full.info.width, height: full.info.height, data: full.data, channels: 3 }, { pad: 'never' })).sort((a, b) => a.box.x - b.box.x)[0]!;
  const m = 0.6;
  const left = Math.max(0, Math.round(inPhoto.box.x - m * inPhoto.box.width));
  const top = Math.max(0, Math.round(inPhoto.box.y - m * inPhoto.box.height));
  const width = Math.min(full.info.width - left, Math.round((1 + 2 * m) * inPhoto.box.width));
  const height = Math.min(full.info.height - top, Math.round((1 + 2 * m) * inPhoto.box.height));
  const crop = await photo.clone().extract({ left, top, width, height }).raw().toBuffer({ resolveWithObject: true });
  const image = { width: crop.info.width, height: crop.info.height, data: crop.data, channels: 3 as const };
  const [face] = await engine.detect(image, { pad: 'auto' });
  enrolled = { personId: 'person_aaaaaaaaaaaaaaaa', templates: [await engine.describe(image, face!)] };
}, 60_000);

afterAll(() => engine.unload());

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(initial: Parameters<typeof testHub>[0] = {}, people: EnrolledPerson[] = [enrolled]) {
  const hub = testHub(initial);
  const stage = new FaceStage({
    gate: hub.gate,
    cameraIds: () => ['front'],
    bus: new EventBus(),
    logger: silentLogger(),
    cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
    people: { revision: () => 1, load: () => Promise.resolve(people) },
  });
  cleanups.push(() => hub.close());
  cleanups.push(() => stage.stop());
  return { hub, stage };
}

/** Mean absolute difference between neighbouring pixels (right and below) inside a box: fine detail. */
function detail(rgb: Buffer, box: FaceBox): number {
  const x0 = Math.ceil(box.x);
  const y0 = Math.ceil(box.y);
  const x1 = Math.floor(box.x + box.width) - 1;
  const y1 = Math.floor(box.y + box.height) - 1;
  let sum = 0;
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      for (let c = 0; c < 3; c++) {
        const k = (y * W + x) * 3 + c;
        sum += Math.abs(rgb[k]! - rgb[k + 3]!) + Math.abs(rgb[k]! - rgb[k + W * 3]!);
        n += 2;
      }
    }
  }
  return sum / n;
}

/** Distinct colours inside a box. */
function colours(rgb: Buffer, box: FaceBox): number {
  const seen = new Set<number>();
  for (let y = Math.ceil(box.y); y < Math.floor(box.y + box.height); y++) {
    for (let x = Math.ceil(box.x); x < Math.floor(box.x + box.width); x++) {
      const k = (y * W + x) * 3;
      seen.add((rgb[k]! << 16) | (rgb[k + 1]! << 8) | rgb[k + 2]!);
    }
  }
  return seen.size;
}

/** Whether pixel (x, y) lies in a box grown by 10% of its size on every side (blurBoxes' default). */
const inGrown = (x: number, y: number, b: FaceBox): boolean =>
  x >= Math.floor(b.x - 0.1 * b.width) && x < Math.ceil(b.x + 1.1 * b.width) && y >= Math.floor(b.y - 0.1 * b.height) && y < Math.ceil(b.y + 1.1 * b.height);

const overlaps = (a: FaceBox, b: FaceBox): boolean => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

/** Temp entries made by something else than the test hubs (whose dirs are named camveil-…). */
const tmpEntries = (): Set<string> => new Set(readdirSync(os.tmpdir()).filter((n) => !n.startsWith('camveil-')));

describe('bystanderBoxes (pure)', () => {
  const a = new Float32Array(128).fill(0);
  const b = new Float32Array(128).fill(0.1); // distance √(128 × 0.01) ≈ 1.13 from a
  const box = (x: number): FaceBox => ({ x, y: 0, width: 10, height: 10 });
  const people: EnrolledPerson[] = [{ personId: 'person_aaaaaaaaaaaaaaaa', templates: [a] }];

  it('keeps faces matching nobody and faces that could not be described; drops the enrolled', () => {
    const found = [{ box: box(0), descriptor: 0 }, { box: box(20), descriptor: 1 }, { box: box(40) }];
    expect(bystanderBoxes(found, [a, b], people)).toEqual([box(20), box(40)]);
    expect(bystanderBoxes(found, [a, b], [])).toEqual([box(0), box(20), box(40)]);
    expect(bystanderBoxes(found, [a, b], people, 2)).toEqual([box(40)]);
    // A descriptor index that points nowhere cannot prove anything: a bystander.
    expect(bystanderBoxes([{ box: box(0), descriptor: 5 }], [a], people)).toEqual([box(0)]);
  });
});

describe('blurBoxes', () => {
  it('rejects a buffer that does not match its size, and leaves the input untouched', async () => {
    await expect(blurBoxes(Buffer.alloc(10), W, H, [])).rejects.toMatchObject({ code: 'CAMVEIL_E_INTERNAL' });
    const original = Buffer.from(frame.data);
    const out = await blurBoxes(frame.data, W, H, faces);
    expect(frame.data.equals(original)).toBe(true);
    expect(out.equals(original)).toBe(false);
    expect((await blurBoxes(frame.data, W, H, [])).equals(original)).toBe(true);
    // Boxes reaching past the edge are clipped; a box entirely outside changes nothing.
    await blurBoxes(frame.data, W, H, [{ x: -20, y: -20, width: 50, height: 50 }, { x: W - 10, y: H - 10, width: 60, height: 60 }]);
    expect((await blurBoxes(frame.data, W, H, [{ x: W + 5, y: 0, width: 10, height: 10 }])).equals(original)).toBe(true);
  });
});

describe('bystander blurring with the face stage (real worker, real models)', () => {
  it('one person enrolled: the two others are pixelated, the enrolled face and everything outside the boxes are untouched', async () => {
    expect(faces).toHaveLength(3);
    const { hub, stage } = setup();
    hub.acceptAndGrant();
    const before = tmpEntries();

    const warm = await stage.bystanderBoxes('front', frame); // starts the worker and loads the models
    const t0 = performance.now();
    const boxes = await stage.bystanderBoxes('front', frame);
    const t1 = performance.now();
    const blurred = await blurBoxes(frame.data, W, H, boxes!);
    const t2 = performance.now();

    expect(warm).toEqual(boxes);
    expect(boxes).toHaveLength(2);
    const [mine, ...others] = faces as [FaceBox, ...FaceBox[]];
    // The bystanders are exactly the two faces on the right, never the enrolled one.
    for (const b of boxes!) expect(overlaps(b, mine)).toBe(false);
    for (const o of others) expect(boxes!.some((b) => overlaps(b, o))).toBe(true);

    for (const o of others) {
      const was = detail(frame.data, o);
      const now = detail(blurred, o);
      expect(was).toBeGreaterThan(4);
      // Fine detail falls by more than half (what is left are the cell edges: 8.6 → 2.7 and 8.0 → 2.4 measured) …
      expect(was).toBeGreaterThan(4);
      expect(now).toBeLessThan(0.4 * was);
      // … and the face holds at most 8 × 8 colours, against ~2 800 before.
      expect(colours(frame.data, o)).toBeGreaterThan(1000);
      expect(colours(blurred, o)).toBeLessThanOrEqual(64);
    }
    // The detector itself no longer finds the bystanders, and still finds the enrolled face.
    const after = (await engine.detect({ width: W, height: H, data: blurred, channels: 3 }, { pad: 'never' })).map((f) => f.box);
    expect(after).toHaveLength(1);
    expect(overlaps(after[0]!, mine)).toBe(true);
    // The enrolled face's box is byte-equal, and every changed pixel lies in a grown bystander box.
    let changedOutside = 0;
    let changed = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const k = (y * W + x) * 3;
        const same = frame.data[k] === blurred[k] && frame.data[k + 1] === blurred[k + 1] && frame.data[k + 2] === blurred[k + 2];
        if (same) continue;
        changed += 1;
        if (!boxes!.some((b) => inGrown(x, y, b))) changedOutside += 1;
        expect(x >= mine.x && x < mine.x + mine.width && y >= mine.y && y < mine.y + mine.height).toBe(false);
      }
    }
    expect(changed).toBeGreaterThan(2000);
    expect(changedOutside).toBe(0);

    expect(stage.stats()).toMatchObject({ bystanderFrames: 2, bystanderFaces: 4, framesAnalysed: 0, known: 0, unknown: 0 });
    // In memory: neither the worker nor sharp left anything in the temp directory.
    expect([...tmpEntries()].filter((n) => !before.has(n))).toEqual([]);
    const check = t1 - t0;
    const blur = t2 - t1;
    // The JPEG encoding that follows costs the same with or without blurring.
    console.log(`bystander blur: ${check.toFixed(0)} ms check (worker: detect + describe 3 faces) + ${blur.toFixed(1)} ms pixelation = ${(check + blur).toFixed(0)} ms added per snapshot`);
  }, 60_000);

  it('nobody enrolled: every face is a bystander', async () => {
    const { hub, stage } = setup({}, []);
    hub.acceptAndGrant();
    const boxes = await stage.bystanderBoxes('front', frame);
    expect(boxes).toHaveLength(3);
  }, 60_000);

  it('the gate denies (region ZZ, no consent, camera switch off): no model is called and the frame stays as it is', async () => {
    const original = Buffer.from(frame.data);
    const zz = setup({ region: 'ZZ' });
    zz.hub.acceptAndGrant();
    const noConsent = setup();
    const off = setup({ faceOn: false });
    off.hub.acceptAndGrant();
    for (const { stage } of [zz, noConsent, off]) {
      expect(await stage.bystanderBoxes('front', frame)).toBeUndefined();
      expect(stage.stats()).toMatchObject({ detectCalls: 0, describeCalls: 0, workersStarted: 0, loaded: false, bystanderFrames: 0 });
    }
    expect(frame.data.equals(original)).toBe(true);
  });

  it('a withdrawal between the question and the worker still keeps the frame from the nets', async () => {
    const { hub, stage } = setup();
    hub.acceptAndGrant();
    // The first answer is "allowed"; the second, asked just before the worker, after the withdrawal.
    const pending = stage.bystanderBoxes('front', frame);
    hub.withdraw();
    expect(await pending).toBeUndefined();
    expect(stage.stats()).toMatchObject({ detectCalls: 0, workersStarted: 0 });
  });

  it('a stopped stage refuses (the pipeline then withholds the snapshot) instead of answering "nothing to blur"', async () => {
    const { hub, stage } = setup();
    hub.acceptAndGrant();
    await stage.stop();
    await expect(stage.bystanderBoxes('front', frame)).rejects.toThrow(/stopped/);
  });
});

describeWithPeers(['ffmpeg'], 'the camera pipeline with bystanderBlur (real ffmpeg; the face stage replaced by a stub)', () => {
  const BOX: FaceBox = { x: 40, y: 40, width: 200, height: 200 };

  async function run(bystanderBlur: boolean, answer: (frame: AnalysisFrame) => Promise<readonly FaceBox[] | undefined>) {
    const video = motionVideo({ seconds: 6, motionAt: 1, motionUntil: 3 });
    const camera = cameraSchema.parse({ id: 'porch', source: `file:${video}`, bystanderBlur });
    const recording = recordingSchema.parse({ preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 });
    const { ffmpeg } = findFfmpeg();
    const sink = new CapturingSink();
    const asked: AnalysisFrame[] = [];
    const pipeline = new CameraPipeline({
      camera,
      recording,
      sink,
      bus: new EventBus(),
      logger: silentLogger(),
      ffmpeg,
      ffmpegMajor: ffmpegMajorVersion(ffmpeg),
      resolveSource: () => Promise.resolve({ main: { url: video, kind: 'file' as const } }),
      bystanderBoxes: (cameraId, frame) => {
        expect(cameraId).toBe('porch');
        asked.push(frame);
        return answer(frame);
      },
      bystanderTimeoutMs: 300,
    });
    pipeline.start();
    try {
      await sink.until((s) => s.clips.length >= 1, 30_000);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await pipeline.stop();
    }
    return { sink, asked, status: pipeline.status() };
  }

  /** Mean absolute difference inside BOX between a decoded snapshot and an RGB24 frame. */
  async function distanceInBox(jpeg: Buffer, rgb: Buffer): Promise<number> {
    const decoded = await sharp(jpeg).removeAlpha().raw().toBuffer();
    let sum = 0;
    for (let y = BOX.y; y < BOX.y + BOX.height; y++) for (let k = (y * W + BOX.x) * 3; k < (y * W + BOX.x + BOX.width) * 3; k++) sum += Math.abs(decoded[k]! - rgb[k]!);
    return sum / (BOX.width * BOX.height * 3);
  }

  it('blurs the boxes the stage names before the snapshot is encoded', async () => {
    const { sink, asked, status } = await run(true, () => Promise.resolve([BOX]));
    expect(asked).toHaveLength(1);
    expect(sink.snapshots).toHaveLength(1);
    const frame = asked[0]!;
    const blurred = await blurBoxes(frame.data, W, H, [BOX]);
    // JPEG noise aside, the snapshot is the pixelated frame, not the original.
    expect(await distanceInBox(sink.snapshots[0]!.jpeg, blurred)).toBeLessThan(0.5 * (await distanceInBox(sink.snapshots[0]!.jpeg, frame.data)));
    expect(status.snapshotsWithheld).toBe(0);
  }, 60_000);

  it('a check that does not answer in time, or fails, withholds the snapshot (counted); the clip still goes', async () => {
    const hung = await run(true, () => new Promise(() => undefined));
    expect(hung.sink.snapshots).toHaveLength(0);
    expect(hung.sink.clips.length).toBeGreaterThanOrEqual(1);
    expect(hung.status.snapshotsWithheld).toBe(1);
    const failed = await run(true, () => Promise.reject(new Error('worker died')));
    expect(failed.sink.snapshots).toHaveLength(0);
    expect(failed.status.snapshotsWithheld).toBe(1);
  }, 60_000);

  it('the gate denies (undefined): the snapshot goes as it is; bystanderBlur off: the stage is not even asked', async () => {
    const denied = await run(true, () => Promise.resolve(undefined));
    expect(denied.asked).toHaveLength(1);
    expect(denied.sink.snapshots).toHaveLength(1);
    const off = await run(false, () => Promise.resolve([BOX]));
    expect(off.asked).toHaveLength(0);
    expect(off.sink.snapshots).toHaveLength(1);
  }, 60_000);
});
