import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaceEngine, type Face, type FaceBox } from '../../src/analysis/faces/face-engine.js';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { CamveilError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { blurClip } from '../../src/recording/clip-blur.js';
import { Fmp4Splitter } from '../../src/recording/fmp4.js';
import { clipBlurFilter, MAX_CLIP_BLUR_REGIONS, planClipBlur, regionsFromObservations, type TimedRegion } from '../../src/recording/clip-blur-filter.js';
import { probeMediaBuffer } from '../harness/media-probe.js';
import { describeWithPeers } from '../harness/peers.js';
import { DEMO } from './face-fixtures.js';

const box = (x: number, y: number, width = 100, height = 100): FaceBox => ({ x, y, width, height });
const region = (fromMs: number, toMs: number, b: FaceBox): TimedRegion => ({ fromMs, toMs, box: b });
const FULL_HD = { width: 1920, height: 1080 };

describe('planClipBlur and clipBlurFilter (pure)', () => {
  it('grows each box by 10% a side, rounds outwards to even pixels and clamps to the frame', () => {
    const [r] = planClipBlur([region(0, 1000, { x: 101, y: 51, width: 99, height: 99 })], FULL_HD);
    // 101 − 9.9 = 91.1 → 90; 101 + 1.1 × 99 = 209.9 → 210
    expect(r).toEqual({ fromMs: 0, toMs: 1000, x: 90, y: 40, width: 120, height: 120 });
    const [edge] = planClipBlur([region(-500, 1000, { x: -30, y: 1000, width: 80, height: 200 })], { width: 641, height: 1079 });
    expect(edge).toEqual({ fromMs: 0, toMs: 1000, x: 0, y: 980, width: 58, height: 98 });
    for (const p of [r!, edge!]) for (const v of [p.x, p.y, p.width, p.height]) expect(v % 2).toBe(0);
  });

  it('drops what is empty: outside the frame, no size, no time, ending before the clip, not finite', () => {
    const dropped = [
      region(0, 1000, box(1930, 10)),
      region(0, 1000, box(10, 10, 0, 50)),
      region(500, 500, box(10, 10)),
      region(-900, -100, box(10, 10)),
      region(0, Number.NaN, box(10, 10)),
    ];
    expect(planClipBlur(dropped, FULL_HD)).toEqual([]);
    // Zero regions: no graph, and the caller sends the clip without re-encoding.
    expect(clipBlurFilter(dropped, FULL_HD)).toBeUndefined();
    expect(clipBlurFilter([], FULL_HD)).toBeUndefined();
  });

  it('merges the same face seen in consecutive analysed frames into one rectangle; keeps apart what is apart in space or time', () => {
    const plan = planClipBlur(
      [region(0, 1500, box(100, 100)), region(500, 2000, box(120, 110)), region(0, 2000, box(1000, 500)), region(5000, 6000, box(100, 100))],
      FULL_HD,
    );
    expect(plan).toEqual([
      { fromMs: 0, toMs: 2000, x: 90, y: 90, width: 140, height: 130 },
      { fromMs: 0, toMs: 2000, x: 990, y: 490, width: 120, height: 120 },
      { fromMs: 5000, toMs: 6000, x: 90, y: 90, width: 120, height: 120 },
    ]);
  });

  it('caps the rectangles; whatever the cap merges still covers every input pixel at every input moment', () => {
    // 40 faces on a grid, each seen for its own second: nothing overlaps, so only the cap merges.
    const many = Array.from({ length: 40 }, (_, i) => region(i * 1000, i * 1000 + 900, box(20 + (i % 8) * 230, 20 + Math.floor(i / 8) * 210, 90, 90)));
    for (const cap of [1, 4, MAX_CLIP_BLUR_REGIONS]) {
      const plan = planClipBlur(many, FULL_HD, { maxRegions: cap });
      expect(plan).toHaveLength(cap);
      for (const r of many) {
        const own = planClipBlur([r], FULL_HD)[0]!;
        const covered = plan.some(
          (p) => p.fromMs <= own.fromMs && p.toMs >= own.toMs && p.x <= own.x && p.y <= own.y && p.x + p.width >= own.x + own.width && p.y + p.height >= own.y + own.height,
        );
        expect(covered).toBe(true);
      }
    }
    const graph = clipBlurFilter(many, FULL_HD)!;
    expect(graph.match(/overlay=/g)).toHaveLength(MAX_CLIP_BLUR_REGIONS);
    expect(graph.match(/crop=/g)).toHaveLength(MAX_CLIP_BLUR_REGIONS);
  });

  it('writes a graph that pixelates each rectangle while it is active, counted from the first frame', () => {
    const graph = clipBlurFilter([region(1250, 2500, box(101, 51, 99, 99))], FULL_HD);
    expect(graph).toBe(
      '[0:v]setpts=PTS-STARTPTS,format=yuv420p,split=2[base][src0];' +
        '[src0]crop=120:120:90:40,scale=8:8:flags=area,scale=120:120:flags=neighbor[pix0];' +
        "[base][pix0]overlay=x=90:y=40:enable='between(t,1.250,2.500)'[last];" +
        '[last]format=yuv420p[blurred]',
    );
    // Cells follow the longer side: a tall box gets 8 cells down and fewer across.
    expect(clipBlurFilter([region(0, 1000, box(0, 0, 50, 100))], FULL_HD, { grow: 0, cells: 8 })).toContain('scale=4:8:flags=area');
  });
});

describe('regionsFromObservations (pure)', () => {
  const start = 1_700_000_000_000;

  it('holds each box ±holdMs around its analysed frame, relative to the clip start, and scales it to the main stream', () => {
    const regions = regionsFromObservations(
      [
        { at: start - 2000, boxes: [box(10, 10)] }, // held until start − 1250: before the clip
        { at: start + 300, boxes: [box(64, 36, 32, 18)] },
        { at: start + 5000, boxes: [box(0, 0, 10, 10), box(320, 180, 10, 10)] },
      ],
      { clipStartMs: start, analysisSize: { width: 640, height: 360 }, mainSize: FULL_HD },
    );
    expect(regions).toEqual([
      { fromMs: 0, toMs: 1050, box: { x: 192, y: 108, width: 96, height: 54 } },
      { fromMs: 4250, toMs: 5750, box: { x: 0, y: 0, width: 30, height: 30 } },
      { fromMs: 4250, toMs: 5750, box: { x: 960, y: 540, width: 30, height: 30 } },
    ]);
    expect(regionsFromObservations([{ at: start + 1000, boxes: [box(0, 0)] }], { clipStartMs: start, analysisSize: FULL_HD, mainSize: FULL_HD, holdMs: 200 })[0]).toMatchObject({ fromMs: 800, toMs: 1200 });
  });

  it('takes the letterbox bars off when the main stream has another aspect than the analysis frame', () => {
    // A 4:3 camera in a 640×360 analysis frame: scaled to 480×360, bars of 80 px left and right.
    const [r] = regionsFromObservations([{ at: 0, boxes: [box(80, 0, 48, 36)] }], { clipStartMs: 0, analysisSize: { width: 640, height: 360 }, mainSize: { width: 1440, height: 1080 } });
    expect(r!.box).toEqual({ x: 0, y: 0, width: 144, height: 108 });
  });
});

// ---------------------------------------------------------------------------------------------------------
// Real ffmpeg, real faces: sample1.jpg (three women side by side) as a 2 s 1280×720 15 fps H.264 clip.

const MAIN = { width: 1280, height: 720 };
const ANALYSIS = { width: 640, height: 360 };
const SECONDS = 2;

/** Runs ffmpeg with `input` on stdin and returns stdout: everything stays in memory. */
function ffmpegInMemory(args: string[], input?: Buffer): Buffer {
  const { ffmpeg } = findFfmpeg();
  const r = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', ...args], { input, maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
  return r.stdout;
}

/** A fragmented-MP4 H.264 clip of a still photo (the jpg is read where npm put it; the clip exists only in memory). */
function photoClip(photo: string, seconds = SECONDS): Buffer {
  return ffmpegInMemory([
    '-loop', '1', '-framerate', '15', '-t', String(seconds), '-i', photo,
    '-vf', `scale=${MAIN.width}:${MAIN.height}:force_original_aspect_ratio=decrease,pad=${MAIN.width}:${MAIN.height}:(ow-iw)/2:(oh-ih)/2,format=yuv420p`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15', '-bf', '0',
    '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', 'pipe:1',
  ]);
}

/**
 * A clip cut from a running stream as the recorder cuts it: the init segment and the fragments after the
 * first `skip`, so its timestamps start where the stream was, not at zero.
 */
function cutLikeTheRecorder(stream: Buffer, skip: number): Buffer {
  const parts: Buffer[] = [];
  let fragments = 0;
  const splitter = new Fmp4Splitter({
    onInit: (init) => parts.push(init),
    onFragment: (fragment) => {
      if (fragments++ >= skip) parts.push(fragment);
    },
  });
  splitter.push(stream);
  return Buffer.concat(parts);
}

/** The frame at `seconds` as RGB24 of `size`. */
function frameAt(clip: Buffer, seconds: number, size = MAIN): Buffer {
  const rgb = ffmpegInMemory(['-f', 'mp4', '-i', 'pipe:0', '-ss', seconds.toFixed(3), '-frames:v', '1', '-vf', `scale=${size.width}:${size.height}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], clip);
  expect(rgb.length).toBe(size.width * size.height * 3);
  return rgb;
}

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const scaled = (b: FaceBox, f: number): FaceBox => ({ x: b.x * f, y: b.y * f, width: b.width * f, height: b.height * f });
const overlaps = (a: FaceBox, b: FaceBox): boolean => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

/** Mean absolute difference between neighbouring pixels (right and below) inside a box: fine detail. */
function detail(rgb: Buffer, b: FaceBox, width = MAIN.width): number {
  let sum = 0;
  let n = 0;
  for (let y = Math.ceil(b.y); y < Math.floor(b.y + b.height) - 1; y++) {
    for (let x = Math.ceil(b.x); x < Math.floor(b.x + b.width) - 1; x++) {
      for (let c = 0; c < 3; c++) {
        const k = (y * width + x) * 3 + c;
        sum += Math.abs(rgb[k]! - rgb[k + 3]!) + Math.abs(rgb[k]! - rgb[k + width * 3]!);
        n += 2;
      }
    }
  }
  return sum / n;
}

/** Mean absolute difference of two RGB24 frames over the pixels `keep(x, y)` selects. */
function meanDiff(a: Buffer, b: Buffer, keep: (x: number, y: number) => boolean, width = MAIN.width, height = MAIN.height): { mean: number; pixels: number } {
  let sum = 0;
  let pixels = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!keep(x, y)) continue;
      const k = (y * width + x) * 3;
      sum += Math.abs(a[k]! - b[k]!) + Math.abs(a[k + 1]! - b[k + 1]!) + Math.abs(a[k + 2]! - b[k + 2]!);
      pixels += 1;
    }
  }
  return { mean: sum / (3 * pixels), pixels };
}

/** Temp entries made by something else than the test hubs. */
const tmpEntries = (): Set<string> => new Set(readdirSync(os.tmpdir()).filter((n) => !n.startsWith('camveil-')));

describeWithPeers(['ffmpeg'], 'blurClip (real ffmpeg, real faces)', () => {
  const CLIP = { cameraId: 'porch', eventId: 'evt_clipblur0001' };
  let engine: FaceEngine;
  let original: Buffer;
  /** The faces in main-stream pixels, found by the real detector in a 640×360 analysis frame. */
  let faces: FaceBox[];
  let analysisFaces: FaceBox[];

  const detectIn = (clip: Buffer, seconds: number): Promise<Face[]> => engine.detect({ ...ANALYSIS, data: frameAt(clip, seconds, ANALYSIS), channels: 3 }, { pad: 'never' });
  /** The faces the detector finds that are usable for recognition (big enough, confident, not cut off). */
  const usable = async (clip: Buffer, seconds: number): Promise<FaceBox[]> => {
    const found = await detectIn(clip, seconds);
    return found.filter((f) => f.quality.ok).map((f) => f.box);
  };

  const run = async (regions: TimedRegion[], clip = original): Promise<Buffer> => {
    const filter = clipBlurFilter(regions, MAIN);
    expect(filter).toBeDefined();
    const { ffmpeg } = findFfmpeg();
    const { body, done } = blurClip(Readable.from([clip]), filter!, { ffmpegPath: ffmpeg, logger: silentLogger(), clip: CLIP });
    const out = await collect(body);
    expect(await done).toEqual({ bytes: out.length });
    return out;
  };

  beforeAll(async () => {
    engine = await FaceEngine.open();
    original = photoClip(join(DEMO, 'sample1.jpg'));
    analysisFaces = (await usable(original, 1)).sort((a, b) => a.x - b.x);
    faces = analysisFaces.map((f) => scaled(f, MAIN.width / ANALYSIS.width));
  }, 60_000);

  afterAll(() => engine.unload());

  it('pixelates every face for the whole clip and leaves the rest of the picture as it was', async () => {
    expect(faces).toHaveLength(3);
    const before = tmpEntries();
    const start = 1_700_000_000_000;
    // As the face stage would report them: one observation per analysed frame, 2 fps.
    const observations = [0, 500, 1000, 1500].map((t) => ({ at: start + t, boxes: analysisFaces }));
    const regions = regionsFromObservations(observations, { clipStartMs: start, analysisSize: ANALYSIS, mainSize: MAIN });
    const blurred = await run(regions);

    // (c) Valid H.264 of the same size, frame count and duration.
    const inProbe = probeMediaBuffer(original);
    const outProbe = probeMediaBuffer(blurred);
    expect(outProbe).toMatchObject({ codec: 'h264', width: MAIN.width, height: MAIN.height, packets: inProbe.packets });
    expect(Math.abs(outProbe.lastPts - outProbe.firstPts - (inProbe.lastPts - inProbe.firstPts))).toBeLessThan(0.1);

    for (const t of [0.2, 1.0, 1.8]) {
      const was = frameAt(original, t);
      const now = frameAt(blurred, t);
      // (a) Inside each face: fine detail falls to under half (what is left are the cell edges).
      for (const f of faces) {
        expect(detail(was, f)).toBeGreaterThan(4);
        expect(detail(now, f)).toBeLessThan(0.5 * detail(was, f));
        expect(meanDiff(was, now, (x, y) => x >= f.x && x < f.x + f.width && y >= f.y && y < f.y + f.height).mean).toBeGreaterThan(5);
      }
      // (b) Well outside the grown boxes: only re-encoding noise.
      const margin = (f: FaceBox) => ({ x: f.x - 0.3 * f.width, y: f.y - 0.3 * f.height, width: 1.6 * f.width, height: 1.6 * f.height });
      const outside = meanDiff(was, now, (x, y) => !faces.some((f) => overlaps(margin(f), { x, y, width: 1, height: 1 })));
      expect(outside.pixels).toBeGreaterThan(0.7 * MAIN.width * MAIN.height);
      expect(outside.mean).toBeLessThan(4);
    }
    // (a) The detector finds no usable face where the faces were (measured: one blob at score 0.53 against 0.99–1.00 before).
    const after = await usable(blurred, 1);
    for (const f of analysisFaces) expect(after.some((a) => overlaps(a, f))).toBe(false);
    // Pipes only: nothing was written to the temp directory.
    expect([...tmpEntries()].filter((n) => !before.has(n))).toEqual([]);
  });

  it('a region active only in the second half leaves the faces of the first half intact (times count from the clip\'s first frame)', async () => {
    // Cut from 2 s into a 4 s stream (keyframe every second): its first frame is stamped 2 s, and the
    // regions' times count from that frame.
    const cut = cutLikeTheRecorder(photoClip(join(DEMO, 'sample1.jpg'), 4), 2);
    const cutProbe = probeMediaBuffer(cut);
    expect(cutProbe.firstPts).toBeCloseTo(2, 1);
    const blurred = await run(faces.map((f) => ({ fromMs: 1000, toMs: 2500, box: f })), cut);
    expect(probeMediaBuffer(blurred)).toMatchObject({ firstPts: 0, packets: cutProbe.packets });
    const early = frameAt(blurred, 0.4);
    const late = frameAt(blurred, 1.6);
    const was = frameAt(original, 0.4);
    for (const f of faces) {
      expect(detail(early, f)).toBeGreaterThan(0.8 * detail(was, f));
      expect(detail(late, f)).toBeLessThan(0.5 * detail(was, f));
    }
    expect(await usable(blurred, 0.4)).toHaveLength(3);
    expect(await usable(blurred, 1.6)).toHaveLength(0);
  });

  it('input that is not MP4: body and done fail with a CamveilError naming the clip, without hanging', async () => {
    const { ffmpeg } = findFfmpeg();
    const filter = clipBlurFilter([region(0, 1000, box(10, 10))], MAIN)!;
    const input = Readable.from([Buffer.from('this is not a video. '.repeat(2000))]);
    const { body, done } = blurClip(input, filter, { ffmpegPath: ffmpeg, logger: silentLogger(), clip: CLIP });
    const error = await collect(body).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CamveilError);
    expect(error).toMatchObject({ code: 'CAMVEIL_E_CAMERA_NOT_VIDEO', where: 'camera porch, clip evt_clipblur0001' });
    expect((error as Error).message).toMatch(/camera porch, clip evt_clipblur0001: bystander blurring failed: the clip is not a usable video \(ffmpeg exit code 1: .*Invalid data found when processing input\)$/);
    await expect(done).rejects.toBe(error);
    expect(input.destroyed).toBe(true);
  }, 20_000);

  it('aborting kills ffmpeg mid-clip: body and done fail at once, the input is released', async () => {
    const { ffmpeg } = findFfmpeg();
    const controller = new AbortController();
    // An input that never ends: without the abort this would hang.
    const input = new Readable({ read() {} });
    input.push(original.subarray(0, Math.floor(original.length / 2)));
    const { body, done } = blurClip(input, clipBlurFilter(faces.map((f) => region(0, 2000, f)), MAIN)!, { ffmpegPath: ffmpeg, logger: silentLogger(), clip: CLIP, signal: controller.signal });
    const reading = collect(body).then(
      () => undefined,
      (e: unknown) => e,
    );
    setTimeout(() => controller.abort(), 300);
    await expect(done).rejects.toMatchObject({ code: 'CAMVEIL_E_INTERNAL' });
    await expect(done).rejects.toThrow(/camera porch, clip evt_clipblur0001: .*aborted/);
    expect(await reading).toBeInstanceOf(CamveilError);
    expect(input.destroyed).toBe(true);
  }, 20_000);

  it('backpressure: while nobody reads the blurred clip, ffmpeg stops taking the input; reading resumes it', async () => {
    const { ffmpeg } = findFfmpeg();
    const long = photoClip(join(DEMO, 'sample1.jpg'), 12);
    let pulled = 0;
    const chunkSize = 16 * 1024;
    const input = new Readable({
      read() {
        const chunk = long.subarray(pulled, pulled + chunkSize);
        pulled += chunk.length;
        this.push(chunk.length > 0 ? chunk : null);
      },
    });
    const { body, done } = blurClip(input, clipBlurFilter(faces.map((f) => region(0, 12_000, f)), MAIN)!, { ffmpegPath: ffmpeg, logger: silentLogger(), clip: CLIP });
    let settled = false;
    void done.finally(() => (settled = true)).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 2500));
    // Stalled: ffmpeg blocks on its full stdout, so it neither finishes nor reads the rest of the input.
    expect(settled).toBe(false);
    expect(pulled).toBeLessThan(long.length);
    // What waits in memory is bounded: the high-water mark plus the last read from ffmpeg's pipe (≤ 64 KiB).
    expect(body.readableLength).toBeLessThanOrEqual(body.readableHighWaterMark + 64 * 1024);
    const out = await collect(body);
    expect(await done).toEqual({ bytes: out.length });
    expect(pulled).toBe(long.length);
    expect(probeMediaBuffer(out).packets).toBe(probeMediaBuffer(long).packets);
  }, 30_000);

  it('the reader going away kills ffmpeg and rejects done', async () => {
    const { ffmpeg } = findFfmpeg();
    const input = new Readable({ read() {} });
    input.push(original);
    const { body, done } = blurClip(input, clipBlurFilter([region(0, 2000, faces[0]!)], MAIN)!, { ffmpegPath: ffmpeg, logger: silentLogger(), clip: CLIP });
    body.once('data', () => body.destroy());
    await expect(done).rejects.toMatchObject({ code: 'CAMVEIL_E_INTERNAL' });
    await expect(done).rejects.toThrow(/camera porch, clip evt_clipblur0001: the blurred clip's reader went away/);
  }, 20_000);
});
