import { describe, expect, it } from 'vitest';
import { intersection, type Box } from '../../src/analysis/box.js';
import { MotionDetector, type MotionDetectorOptions, type MotionResult } from '../../src/analysis/motion.js';
import { boundingBox } from '../../src/cameras/ffmpeg-args.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';
import type { Polygon } from '../../src/config/schema.js';
import { CamveilError } from '../../src/errors.js';
import { motionVideo } from '../harness/video.js';
import { decodeFrames } from './decode-frames.js';

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 2;
/**
 * The harness's box is 1/6 of the picture high and travels across x 0.1..0.7 with its top at y 0.4,
 * so it covers x 0.1..0.7, y 0.4..0.567. These rectangles cover that path with a margin, or avoid it.
 */
const AROUND_PATH: Polygon = [[0.05, 0.33], [0.75, 0.33], [0.75, 0.63], [0.05, 0.63]];
const BELOW_PATH: Polygon = [[0, 0.7], [1, 0.7], [1, 1], [0, 1]];
const MOTION_AT_S = 4;

function detector(overrides: Partial<MotionDetectorOptions> = {}): MotionDetector {
  return new MotionDetector({ width: WIDTH, height: HEIGHT, zones: [], privacyMasks: [], sensitivity: 0.5, minArea: 0.005, ...overrides });
}

async function run(frames: readonly AnalysisFrame[], overrides: Partial<MotionDetectorOptions> = {}): Promise<MotionResult[]> {
  const d = detector(overrides);
  const results: MotionResult[] = [];
  for (const frame of frames) results.push(await d.update(frame));
  return results;
}

/** The frames without their ready-made grey images: the detector then makes its own with sharp. */
function rgbOnly(frames: readonly AnalysisFrame[]): AnalysisFrame[] {
  return frames.map(withoutGrey);
}

function withoutGrey(frame: AnalysisFrame): AnalysisFrame {
  const copy = { ...frame };
  delete copy.motionGrey;
  return copy;
}

/** Whether `outer` holds all of `inner`. */
function contains(outer: Box, inner: Box): boolean {
  return outer.x <= inner.x && outer.y <= inner.y && outer.x + outer.width >= inner.x + inner.width && outer.y + outer.height >= inner.y + inner.height;
}

function flagged(results: readonly MotionResult[]): number[] {
  return results.flatMap((r, i) => (r.motion ? [i] : []));
}

function sumOfScores(results: readonly MotionResult[]): number {
  return results.reduce((sum, r) => sum + r.score, 0);
}

/**
 * A copy of `frame` at another time, with `f` applied to every byte of the rectangle [x0,x1)x[y0,y1) (pixels).
 * Without a grey image: the detector makes its own from the edited pixels (sharp).
 */
function edited(frame: AnalysisFrame, at: number, rect: [number, number, number, number], f: (v: number) => number): AnalysisFrame {
  const data = Buffer.from(frame.data);
  const [x0, x1, y0, y1] = rect;
  for (let y = y0; y < y1; y++) for (let k = (y * WIDTH + x0) * 3; k < (y * WIDTH + x1) * 3; k++) data[k] = f(data[k]!);
  return { ...withoutGrey(frame), at, seq: at / 500, data };
}

/** A box drawn over a frame: white, so it differs from anything in the background. */
function withBoxes(frame: AnalysisFrame, at: number, boxes: readonly Box[]): AnalysisFrame {
  return boxes.reduce((f, b) => edited(f, at, [b.x, b.x + b.width, b.y, b.y + b.height], () => 255), frame);
}

/**
 * Where the harness's white box is in a decoded frame: the bounding box of the pixels brighter than 240 in
 * every channel above y 230 (the bars there are at most 75 % white; the box's rows are 144..203), or an
 * empty box when there are none.
 */
function whiteBox(frame: AnalysisFrame): Box {
  let [x0, y0, x1, y1] = [WIDTH, HEIGHT, -1, -1];
  for (let y = 0; y < 230; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const k = (y * WIDTH + x) * 3;
      if (frame.data[k]! > 240 && frame.data[k + 1]! > 240 && frame.data[k + 2]! > 240) {
        [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      }
    }
  }
  return x1 < 0 ? { x: 0, y: 0, width: 0, height: 0 } : { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}

/** `box` (frame pixels) as a normalised polygon, for a mask or a zone. */
function polygonOf(box: Box): Polygon {
  const [x0, y0, x1, y1] = [box.x / WIDTH, box.y / HEIGHT, (box.x + box.width) / WIDTH, (box.y + box.height) / HEIGHT];
  return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
}

/** Grown by `by` pixels on every side. */
function grown(b: Box, by: number): Box {
  return { x: b.x - by, y: b.y - by, width: b.width + 2 * by, height: b.height + 2 * by };
}

// Real ffmpeg decodes of generated H.264 (with temporal noise), at the analysis stream's 2 fps, 640x360. Each
// frame also carries the grey image the ingest's ffmpeg makes beside it (same filter graph); `rgbOnly` takes
// it away so the detector makes its own with sharp, as for frames that do not come from the ingest.
const stillVideo = motionVideo({ seconds: 10 });
const movingVideo = motionVideo({ seconds: 12, motionAt: MOTION_AT_S });
const stillDecoded = decodeFrames(stillVideo, { fps: FPS, width: WIDTH, height: HEIGHT, motionGrey: { maskBoxes: [] } });
const movingDecoded = decodeFrames(movingVideo, { fps: FPS, width: WIDTH, height: HEIGHT, motionGrey: { maskBoxes: [] } });
/** The moving box's video as the ingest makes it for a camera masked around the path: mask boxes in the grey image. */
const movingMasked = decodeFrames(movingVideo, { fps: FPS, width: WIDTH, height: HEIGHT, motionGrey: { maskBoxes: [boundingBox(AROUND_PATH)] } });

describe.each([
  { path: 'grey made by sharp (frames from elsewhere)', still: rgbOnly(stillDecoded), moving: rgbOnly(movingDecoded), movingMasked: rgbOnly(movingDecoded) },
  { path: "grey made by the ingest's ffmpeg", still: stillDecoded, moving: movingDecoded, movingMasked },
])('MotionDetector on decoded H.264 video, $path', ({ still, moving, movingMasked: masked }) => {
  it('decodes the expected number of frames', () => {
    expect(still.length).toBe(10 * FPS);
    expect(moving.length).toBe(12 * FPS);
    expect(masked.length).toBe(12 * FPS);
  });

  it('flags nothing in a still scene with sensor and compression noise, even at sensitivity 1', async () => {
    for (const sensitivity of [0, 0.5, 1]) {
      const results = await run(still, { sensitivity, minArea: 0.001 });
      expect(flagged(results)).toEqual([]);
    }
  });

  it('flags a moving box from the frame it appears in (within one frame) until the end, and not before', async () => {
    const appears = MOTION_AT_S * FPS;
    for (const sensitivity of [0, 0.5, 1]) {
      const hits = flagged(await run(moving, { sensitivity }));
      expect(hits[0]).toBeGreaterThanOrEqual(appears);
      expect(hits[0]).toBeLessThanOrEqual(appears + 1);
      expect(hits).toEqual(Array.from({ length: moving.length - hits[0]! }, (_, i) => hits[0]! + i));
    }
  });

  it('never flags motion that happens only inside a privacy mask, even at sensitivity 1, and gives no region there', async () => {
    const results = await run(masked, { privacyMasks: [AROUND_PATH], sensitivity: 1, minArea: 0.001 });
    expect(flagged(results)).toEqual([]);
    expect(results.flatMap((r) => r.regions)).toEqual([]);
  });

  it('never flags motion outside the configured zones, and does flag it inside them', async () => {
    expect(flagged(await run(moving, { zones: [BELOW_PATH], sensitivity: 1, minArea: 0.001 }))).toEqual([]);
    const inZone = await run(moving, { zones: [AROUND_PATH] });
    expect(flagged(inZone).length).toBeGreaterThan(0);
    // The score is a fraction of the watched area: a zone hugging the path gives the same box a larger score.
    expect(sumOfScores(inZone)).toBeGreaterThan(sumOfScores(await run(moving)));
  });

  it('scores more change as sensitivity rises', async () => {
    const sums: number[] = [];
    for (const sensitivity of [0, 0.25, 0.5, 0.75, 1]) sums.push(sumOfScores(await run(moving, { sensitivity })));
    for (let i = 1; i < sums.length; i++) expect(sums[i]).toBeGreaterThanOrEqual(sums[i - 1]!);
    expect(sums[sums.length - 1]).toBeGreaterThan(sums[0]!);
  });

  it('gives one region for the moving box, holding it, in analysis-frame pixels; none without motion', async () => {
    const results = await run(moving);
    for (let k = MOTION_AT_S * FPS + 1; k < moving.length; k++) {
      const box = whiteBox(moving[k]!);
      expect(box.width * box.height, `frame ${k}: the box is found`).toBeGreaterThan(50 * 50);
      const { regions } = results[k]!;
      expect(regions, `frame ${k}`).toHaveLength(1);
      // Held, give or take 4 px (compression softens the box's edges).
      expect(contains(grown(regions[0]!, 4), box), `frame ${k}: ${JSON.stringify({ regions, box })}`).toBe(true);
      // And not much more than the box and where it just was.
      expect(regions[0]!.width * regions[0]!.height, `frame ${k}`).toBeLessThan(4 * 60 * 60);
    }
    expect(results.filter((r) => !r.motion).every((r) => r.regions.length === 0)).toBe(true);
  });

  it('seeds the background with the first frame and reports nothing for it', async () => {
    const d = detector();
    expect(await d.update(moving[moving.length - 1]!)).toEqual({ score: 0, motion: false, regions: [] });
  });

  it('processes overlapping update calls in order', async () => {
    const d = detector();
    const results = await Promise.all(moving.map((f) => d.update(f)));
    expect(results).toEqual(await run(moving));
  });
});

describe('MotionDetector on edited frames (its own grey image, made by sharp)', () => {
  const still = rgbOnly(stillDecoded);

  it('sees a faint change (20 grey levels) at sensitivity 1 but not at sensitivity 0', async () => {
    const [first, second] = still;
    const faint = edited(second!, 1000, [200, 300, 100, 200], (v) => Math.min(255, v + 20));
    expect((await run([first!, second!, faint], { sensitivity: 0 }))[2]).toEqual({ score: 0, motion: false, regions: [] });
    expect((await run([first!, second!, faint], { sensitivity: 1 }))[2]?.motion).toBe(true);
  });

  it('treats the whole picture changing at once (lights on) as a new background, not motion', async () => {
    const frames = still.slice(0, 10);
    const lit = still.slice(10).map((f, i) => edited(f, 5000 + i * 500, [0, WIDTH, 0, HEIGHT], (v) => Math.min(255, v + 60)));
    const results = await run([...frames, ...lit], { sensitivity: 1, minArea: 0.001 });
    expect(flagged(results)).toEqual([]);
  });

  it('lets an object that stays put fade into the background', async () => {
    // A grey block parks at frame 10 and stays: motion at first, then none once the background adapts.
    const parked = Array.from({ length: 400 }, (_, i) => {
      const base = still[i % still.length]!;
      return i < 10 ? { ...base, at: i * 500, seq: i } : edited(base, i * 500, [400, 480, 250, 330], () => 40);
    });
    const results = await run(parked);
    expect(results[10]?.motion).toBe(true);
    const lastHit = flagged(results).at(-1)!;
    // Within about two minutes (240 frames at 2 fps) of parking.
    expect(lastHit).toBeLessThan(10 + 240);
    expect(flagged(results.slice(lastHit + 1))).toEqual([]);
  });

  const near: Box = { x: 60, y: 40, width: 60, height: 60 };
  const far: Box = { x: 440, y: 220, width: 80, height: 80 };
  const scene = (boxes: readonly Box[]) => [still[0]!, still[1]!, withBoxes(still[2]!, 1000, boxes)];

  it('gives one region holding a box that appears, and two for two boxes far apart, biggest first', async () => {
    const one = (await run(scene([near])))[2]!;
    expect(one.motion).toBe(true);
    expect(one.regions).toHaveLength(1);
    expect(contains(one.regions[0]!, near)).toBe(true);
    expect(contains(grown(near, 12), one.regions[0]!)).toBe(true);
    const two = (await run(scene([near, far])))[2]!;
    expect(two.regions).toHaveLength(2);
    expect(contains(two.regions[0]!, far)).toBe(true);
    expect(contains(two.regions[1]!, near)).toBe(true);
  });

  it('merges boxes a few pixels apart into one region', async () => {
    const beside: Box = { x: near.x + near.width + 4, y: near.y, width: 40, height: 60 };
    const { regions } = (await run(scene([near, beside])))[2]!;
    expect(regions).toHaveLength(1);
    expect(contains(regions[0]!, near) && contains(regions[0]!, beside)).toBe(true);
  });

  it('never gives a region inside a privacy mask, even when the frame arrives unmasked', async () => {
    const masks = [polygonOf(grown(near, 8))];
    // Only the masked box: nothing at all.
    const alone = (await run(scene([near]), { privacyMasks: masks, sensitivity: 1, minArea: 0.0001 }))[2]!;
    expect(alone).toEqual({ score: 0, motion: false, regions: [] });
    // With the other box: its region only, nowhere near the mask.
    const both = (await run(scene([near, far]), { privacyMasks: masks, sensitivity: 1, minArea: 0.0001 }))[2]!;
    expect(both.regions).toHaveLength(1);
    expect(contains(both.regions[0]!, far)).toBe(true);
    expect(intersection(both.regions[0]!, grown(near, 8))).toBeUndefined();
  });

  it('rejects frames of another size, grey images of another size, and bad options', async () => {
    const frame = still[0]!;
    await expect(detector().update({ ...frame, width: 320, height: 180 })).rejects.toBeInstanceOf(CamveilError);
    await expect(detector().update({ ...frame, motionGrey: { width: 80, height: 45, data: Buffer.alloc(80 * 45) } })).rejects.toBeInstanceOf(CamveilError);
    expect(() => detector({ sensitivity: 2 })).toThrow(CamveilError);
    expect(() => detector({ width: 0 })).toThrow(CamveilError);
  });
});
