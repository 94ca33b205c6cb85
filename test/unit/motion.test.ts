import { describe, expect, it } from 'vitest';
import { MotionDetector, type MotionDetectorOptions, type MotionResult } from '../../src/analysis/motion.js';
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

function flagged(results: readonly MotionResult[]): number[] {
  return results.flatMap((r, i) => (r.motion ? [i] : []));
}

function sumOfScores(results: readonly MotionResult[]): number {
  return results.reduce((sum, r) => sum + r.score, 0);
}

/** A copy of `frame` at another time, with `f` applied to every byte of the rectangle [x0,x1)x[y0,y1) (pixels). */
function edited(frame: AnalysisFrame, at: number, rect: [number, number, number, number], f: (v: number) => number): AnalysisFrame {
  const data = Buffer.from(frame.data);
  const [x0, x1, y0, y1] = rect;
  for (let y = y0; y < y1; y++) for (let k = (y * WIDTH + x0) * 3; k < (y * WIDTH + x1) * 3; k++) data[k] = f(data[k]!);
  return { ...frame, at, seq: at / 500, data };
}

describe('MotionDetector on decoded H.264 video', () => {
  // Real ffmpeg decodes of generated H.264 (with temporal noise), at the analysis stream's 2 fps, 640x360.
  const still = decodeFrames(motionVideo({ seconds: 10 }), { fps: FPS, width: WIDTH, height: HEIGHT });
  const moving = decodeFrames(motionVideo({ seconds: 12, motionAt: MOTION_AT_S }), { fps: FPS, width: WIDTH, height: HEIGHT });

  it('decodes the expected number of frames', () => {
    expect(still.length).toBe(10 * FPS);
    expect(moving.length).toBe(12 * FPS);
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

  it('never flags motion that happens only inside a privacy mask, even at sensitivity 1', async () => {
    const results = await run(moving, { privacyMasks: [AROUND_PATH], sensitivity: 1, minArea: 0.001 });
    expect(flagged(results)).toEqual([]);
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

  it('sees a faint change (20 grey levels) at sensitivity 1 but not at sensitivity 0', async () => {
    const [first, second] = still;
    const faint = edited(second!, 1000, [200, 300, 100, 200], (v) => Math.min(255, v + 20));
    expect((await run([first!, second!, faint], { sensitivity: 0 }))[2]).toEqual({ score: 0, motion: false });
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

  it('seeds the background with the first frame and reports nothing for it', async () => {
    const d = detector();
    expect(await d.update(moving[moving.length - 1]!)).toEqual({ score: 0, motion: false });
  });

  it('processes overlapping update calls in order', async () => {
    const d = detector();
    const results = await Promise.all(moving.map((f) => d.update(f)));
    expect(results).toEqual(await run(moving));
  });

  it('rejects frames of another size and bad options', async () => {
    const frame = still[0]!;
    await expect(detector().update({ ...frame, width: 320, height: 180 })).rejects.toBeInstanceOf(CamveilError);
    expect(() => detector({ sensitivity: 2 })).toThrow(CamveilError);
    expect(() => detector({ width: 0 })).toThrow(CamveilError);
  });
});
