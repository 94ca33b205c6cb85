import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BystanderLog } from '../../src/analysis/faces/bystander-log.js';
import { FaceEngine, type FaceBox } from '../../src/analysis/faces/face-engine.js';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { silentLogger } from '../../src/log.js';
import { BystanderClipSink, blurObservations } from '../../src/recording/bystander-clip-sink.js';
import { videoSizeOfInit } from '../../src/recording/fmp4.js';
import type { ClipStream } from '../../src/recording/sink.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { describeWithPeers } from '../harness/peers.js';
import { DEMO } from './face-fixtures.js';

// sample1.jpg (three faces) as a 2 s 1280×720 clip, in memory; the face stage's view of it is 640×360.
const MAIN = { width: 1280, height: 720 };
const ANALYSIS = { width: 640, height: 360 };
const PHOTO = join(DEMO, 'sample1.jpg');
const STARTED = 1_800_000_000_000;

function ffmpegInMemory(args: string[], input?: Buffer): Buffer {
  const r = spawnSync(findFfmpeg().ffmpeg, ['-hide_banner', '-loglevel', 'error', ...args], { input, maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
  return r.stdout;
}

const fit = (s: { width: number; height: number }): string =>
  `scale=${s.width}:${s.height}:force_original_aspect_ratio=decrease,pad=${s.width}:${s.height}:(ow-iw)/2:(oh-ih)/2,format=yuv420p`;

const photoClip = (): Buffer =>
  ffmpegInMemory(['-loop', '1', '-framerate', '15', '-t', '2', '-i', PHOTO, '-vf', fit(MAIN), '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15', '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', 'pipe:1']);

const frameAt = (clip: Buffer, seconds: number): Buffer =>
  ffmpegInMemory(['-f', 'mp4', '-i', 'pipe:0', '-ss', String(seconds), '-frames:v', '1', '-vf', `scale=${ANALYSIS.width}:${ANALYSIS.height}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], clip);

function clipStream(bytes: Buffer, cameraId = 'porch'): ClipStream {
  return {
    meta: { eventId: 'ev-1', cameraId, startedAt: STARTED, motionAt: STARTED + 500, contentType: 'video/mp4' },
    body: Readable.from([bytes]),
    summary: Promise.resolve({ durationMs: 2_000, bytes: bytes.length, endedBy: 'motion-stopped' }),
  };
}

describe('blurObservations (pure)', () => {
  const b = { x: 10, y: 10, width: 50, height: 50 };
  const moved = { x: 60, y: 20, width: 50, height: 50 };
  const far = { x: 600, y: 300, width: 50, height: 50 };
  const atTimes = (obs: ReturnType<typeof blurObservations>, from: number, to: number) => obs.filter((f) => f.at > from && f.at < to);

  it('carries the boxes seen near the first and last analysed frames over the still pre- and post-roll, without a gap', () => {
    const frames = [
      { at: 2_000, boxes: [b] },
      { at: 2_500, boxes: [] },
      // First seen 1.5 s after the first analysed frame: still carried back to the start.
      { at: 3_500, boxes: [moved] },
      { at: 9_000, boxes: [far] },
    ];
    const out = blurObservations(frames, 0, 10_000, 750);
    // Back to the start: b and moved (within MAX_FOLLOW_MS of the first analysed frame); on to the end: far only.
    const points = (box: typeof b) => out.filter((f) => f.boxes.includes(box)).map((f) => f.at);
    expect(points(b)).toEqual([0, 500, 1_250, 2_000]);
    expect(points(moved)).toEqual([0, 500, 1_250, 2_000, 2_750, 3_500]);
    expect(points(far)).toEqual([9_000, 9_750, 10_000]);
    // Held ±750 ms, points at most 750 ms apart cover every moment from the start to the frame.
    for (const box of [b, moved]) {
      const at = points(box);
      for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeLessThanOrEqual(1_500);
    }
    expect(atTimes(out, -1, 0)).toEqual([]);
  });

  it('follows a face to its mutual nearest box in a later frame, across a frame that missed it: the hull covers the gap', () => {
    const out = blurObservations([{ at: 2_000, boxes: [b, far] }, { at: 2_500, boxes: [far] }, { at: 3_000, boxes: [moved, far] }], 0, 20_000, 500);
    const hullOfB = { x: 10, y: 10, width: 100, height: 60 };
    // b at 2 000 is missing at 2 500 and found moved at 3 000: covered by the hull throughout.
    expect(atTimes(out, 2_000, 3_000).filter((f) => f.boxes.some((x) => x.x === 10 && x.width === 100)).map((f) => f.at)).toEqual([2_250, 2_500, 2_750]);
    expect(out.some((f) => f.boxes.some((x) => JSON.stringify(x) === JSON.stringify(hullOfB)))).toBe(true);
    // `far` is never joined to b or moved: no hull reaches across the frame.
    expect(out.every((f) => f.boxes.every((x) => x.width < 200))).toBe(true);
  });

  it('does not join frames more than MAX_FOLLOW_MS apart, nor boxes more than two widths apart', () => {
    const out = blurObservations([{ at: 0, boxes: [b] }, { at: 10_000, boxes: [moved] }], -1, -1, 500);
    expect(out.map((f) => f.at)).toEqual([0, 10_000]);
    const apart = blurObservations([{ at: 0, boxes: [b] }, { at: 500, boxes: [{ ...b, x: 200 }] }], -1, -1, 500);
    expect(apart.map((f) => f.at)).toEqual([0, 500]);
    expect(blurObservations([], 0, 5_000, 750)).toEqual([]);
  });
});

describeWithPeers(['ffmpeg'], 'bystander blurring of clips (real ffmpeg, real faces)', () => {
  let engine: FaceEngine;
  let clip: Buffer;
  let faces: FaceBox[];

  async function usableFaces(rgb: Buffer): Promise<number> {
    const found = await engine.detect({ width: ANALYSIS.width, height: ANALYSIS.height, data: new Uint8Array(rgb), channels: 3 }, { pad: 'never', detector: 'tiny' });
    return found.filter((f) => f.quality.ok).length;
  }

  beforeAll(async () => {
    engine = await FaceEngine.open();
    clip = photoClip();
    // The boxes the face worker would report for the analysis frame (tiny detector, no padding).
    const { data } = await sharp(PHOTO).resize(ANALYSIS.width, ANALYSIS.height, { fit: 'contain', background: '#000' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    faces = (await engine.detect({ width: ANALYSIS.width, height: ANALYSIS.height, data: new Uint8Array(data), channels: 3 }, { pad: 'never', detector: 'tiny' })).map((f) => f.box);
  }, 60_000);
  afterAll(() => engine.unload());

  it('reads the video size from the clip itself', () => {
    expect(videoSizeOfInit(clip)).toEqual(MAIN);
    expect(videoSizeOfInit(Buffer.from('not an mp4 at all'))).toBeUndefined();
  });

  it('pixelates the faces the face stage logged as bystanders, and the detector no longer finds them', async () => {
    expect(faces.length).toBeGreaterThanOrEqual(2);
    expect(await usableFaces(frameAt(clip, 1))).toBeGreaterThanOrEqual(2);
    const log = new BystanderLog();
    log.watch('porch', ANALYSIS);
    for (const t of [0, 500, 1000, 1500]) log.record('porch', STARTED + t, faces);
    const inner = new CapturingSink();
    const outcomes: string[] = [];
    const sink = new BystanderClipSink({ inner, log, ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger(), onOutcome: (_, o) => outcomes.push(o) });
    await sink.clip(clipStream(clip));
    expect(outcomes).toEqual(['blurred']);
    expect(inner.clips).toHaveLength(1);
    const out = inner.clips[0]!;
    expect(out.bytes.equals(clip)).toBe(false);
    expect(out.summary.bytes).toBe(out.bytes.length);
    expect(videoSizeOfInit(out.bytes)).toEqual(MAIN);
    for (const t of [0.2, 1, 1.8]) expect(await usableFaces(frameAt(out.bytes, t))).toBe(0);
  }, 60_000);

  it('passes a clip on byte for byte when no bystander was seen during it, or when the camera does not blur clips', async () => {
    const log = new BystanderLog();
    log.watch('porch', ANALYSIS);
    // Seen long before the clip: outside its span.
    log.record('porch', STARTED - 60_000, faces);
    log.record('garden', STARTED + 500, faces);
    const inner = new CapturingSink();
    const outcomes: string[] = [];
    const sink = new BystanderClipSink({ inner, log, ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger(), onOutcome: (_, o) => outcomes.push(o) });
    await sink.clip(clipStream(clip, 'porch'));
    await sink.clip(clipStream(clip, 'garden'));
    expect(outcomes).toEqual(['unchanged']);
    expect(inner.clips.map((c) => c.bytes.equals(clip))).toEqual([true, true]);
  }, 30_000);

  it('withholds a clip it cannot blur instead of passing it on with the faces visible', async () => {
    const log = new BystanderLog();
    log.watch('porch', ANALYSIS);
    log.record('porch', STARTED + 500, faces);
    const inner = new CapturingSink();
    const outcomes: string[] = [];
    const sink = new BystanderClipSink({ inner, log, ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger(), onOutcome: (_, o) => outcomes.push(o) });
    // An init segment that names a video track, followed by fragments ffmpeg cannot decode.
    const init = clip.subarray(0, clip.indexOf(Buffer.from('moof')) - 4);
    const broken = Buffer.concat([init, Buffer.alloc(4096, 7)]);
    await sink.clip(clipStream(broken));
    // Bytes without a readable video size at all.
    await sink.clip(clipStream(Buffer.from('garbage that is not mp4')));
    expect(outcomes).toEqual(['withheld', 'withheld']);
    expect(inner.clips).toHaveLength(0);
  }, 30_000);

  it("looks at the clip's own frames: a clip the live stage never analysed (a busy hub dropped them all) is still blurred", async () => {
    const log = new BystanderLog();
    log.watch('porch', ANALYSIS);
    const checked: number[] = [];
    const scan = async (_camera: string, frame: { at: number; width: number; height: number; data: Buffer }) => {
      checked.push(frame.at);
      const found = await engine.detect({ width: frame.width, height: frame.height, data: new Uint8Array(frame.data), channels: 3 }, { pad: 'never', detector: 'tiny' });
      return found.map((f) => f.box);
    };
    const inner = new CapturingSink();
    const outcomes: string[] = [];
    const sink = new BystanderClipSink({ inner, log, scan, ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger(), onOutcome: (_, o) => outcomes.push(o) });
    await sink.clip(clipStream(clip));
    expect(outcomes).toEqual(['blurred']);
    // Every 500 ms of the clip's own timeline, from its first frame: no gap longer than the 750 ms hold.
    expect(checked[0]).toBe(STARTED);
    expect(checked.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < checked.length; i++) expect(checked[i]! - checked[i - 1]!).toBeLessThanOrEqual(750);
    for (const t of [0.1, 0.7, 1.3, 1.9]) expect(await usableFaces(frameAt(inner.clips[0]!.bytes, t))).toBe(0);
    // Without the scan, the same clip with the same (empty) live log would have left the hub untouched.
    const bare = new CapturingSink();
    await new BystanderClipSink({ inner: bare, log, ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger() }).clip(clipStream(clip));
    expect(bare.clips[0]!.bytes.equals(clip)).toBe(true);
  }, 60_000);

  it('withholds the clip when a frame cannot be checked, or the check does not finish in time', async () => {
    const log = new BystanderLog();
    log.watch('porch', ANALYSIS);
    const inner = new CapturingSink();
    const outcomes: string[] = [];
    const failing = new BystanderClipSink({ inner, log, scan: () => Promise.reject(new Error('worker died')), ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger(), onOutcome: (_, o) => outcomes.push(o) });
    await failing.clip(clipStream(clip));
    // Never answers: the limit is max(scanTimeoutMs, 4 × the clip's 2 s).
    const stuck = new BystanderClipSink({ inner, log, scan: () => new Promise(() => undefined), scanTimeoutMs: 1, ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger(), onOutcome: (_, o) => outcomes.push(o) });
    await stuck.clip(clipStream(clip));
    expect(outcomes).toEqual(['withheld', 'withheld']);
    expect(inner.clips).toHaveLength(0);
  }, 60_000);

  it('stops looking when the gate refuses recognition part-way, and blurs what it found and what the live stage saw', async () => {
    const log = new BystanderLog();
    log.watch('porch', ANALYSIS);
    log.record('porch', STARTED + 1_500, faces);
    let calls = 0;
    // Allowed for the first frame only, then refused (undefined): no further frame reaches the model.
    const scan = () => Promise.resolve(calls++ === 0 ? faces : undefined);
    const inner = new CapturingSink();
    const outcomes: string[] = [];
    const sink = new BystanderClipSink({ inner, log, scan, ffmpegPath: findFfmpeg().ffmpeg, logger: silentLogger(), onOutcome: (_, o) => outcomes.push(o) });
    await sink.clip(clipStream(clip));
    expect(calls).toBe(2);
    expect(outcomes).toEqual(['blurred']);
    for (const t of [0.1, 1.5]) expect(await usableFaces(frameAt(inner.clips[0]!.bytes, t))).toBe(0);
  }, 60_000);

  it('the log keeps boxes of watched cameras only, for a bounded time, and forgets everything on request', () => {
    const log = new BystanderLog({ keepMs: 1_000 });
    log.watch('porch', ANALYSIS);
    log.record('porch', 0, faces);
    log.record('porch', 2_000, faces);
    log.record('garden', 2_000, faces);
    expect(log.between('porch', -1, 10_000).map((s) => s.at)).toEqual([2_000]);
    expect(log.between('garden', -1, 10_000)).toEqual([]);
    expect([log.watching('porch'), log.watching('garden'), log.watchedCount]).toEqual([{ analysis: ANALYSIS }, undefined, 1]);
    log.forget();
    expect(log.between('porch', -1, 10_000)).toEqual([]);
    log.record('porch', 3_000, faces);
    log.watch('porch', undefined);
    expect([log.between('porch', -1, 10_000), log.watchedCount]).toEqual([[], 0]);
  });
});
