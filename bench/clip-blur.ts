import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { FaceEngine } from '../src/analysis/faces/face-engine.js';
import { findFfmpeg } from '../src/cameras/ffmpeg-binary.js';
import { silentLogger } from '../src/log.js';
import { blurClip, CLIP_ENCODER_ARGS, FRAGMENTED_MP4_ARGS } from '../src/recording/clip-blur.js';
import { clipBlurFilter, type TimedRegion } from '../src/recording/clip-blur-filter.js';
import { scanClipFaces } from '../src/recording/clip-face-scan.js';

/**
 * `npm run bench -- clip-blur`: what bystander blurring costs per second of clip. A 1080p 15 fps H.264 clip
 * (testsrc2 with noise at 4 Mbit/s, like the ingest benchmark's stream: every pixel moves, as on a busy
 * street) goes through ffmpeg in four ways, all through pipes as in the gateway:
 *  - `copy`: `-c copy` remux, what sending a clip unchanged costs;
 *  - `reencode`: decode and re-encode with the blur's encoder settings and no filter;
 *  - `blur1`, `blur4`, `blur8`: blurClip with 1, 4 and 8 (the cap) face-sized regions active all along;
 *  - `scan`: the face scan every blurring camera's clip gets (scanClipFaces: decode, 2 frames a second at
 *    640×360, the tiny face detector on each, in this process rather than the worker): its CPU is
 *    ffmpeg's plus this process's own. The clip holds no face, so this is detection without describing.
 * CPU is the ffmpeg process's user + system time, read from this process's `cutime`/`cstime` in
 * /proc/self/stat (the children it has reaped), so nothing between samples is lost. Each way runs
 * CAMVEIL_BENCH_REPEAT times (default 3); the median counts. CAMVEIL_BENCH_SECONDS sets the clip length (default 10).
 */

const SIZE = { width: 1920, height: 1080 };
const FPS = 15;
const CLOCK_TICKS = 100;

interface Run {
  /** ffmpeg CPU seconds (user + system) per second of video: 1 means one core busy in real time. */
  cpuPerVideoSecond: number;
  /** Wall time per second of video: under 1 is faster than real time. */
  wallPerVideoSecond: number;
  outputMiB: number;
}

/** CPU seconds of this process's children that have exited and been reaped (fields 16 and 17 of stat). */
function reapedChildrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

function benchClip(seconds: number): Buffer {
  const { ffmpeg } = findFfmpeg();
  const r = spawnSync(
    ffmpeg,
    [
      '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${SIZE.width}x${SIZE.height}:rate=${FPS}:duration=${seconds}`,
      '-vf', 'noise=alls=4:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-b:v', '4M', '-maxrate', '4M',
      '-bufsize', '8M', '-g', String(FPS), '-keyint_min', String(FPS), '-sc_threshold', '0', '-bf', '0',
      ...FRAGMENTED_MP4_ARGS, 'pipe:1',
    ],
    { maxBuffer: 1024 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`cannot generate the bench clip: ${r.stderr.toString()}`);
  return r.stdout;
}

/** Counts and drops a stream's bytes, reading as fast as ffmpeg writes. */
async function drain(body: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of body) bytes += (chunk as Buffer).length;
  return bytes;
}

/** Runs ffmpeg with `args` (reading stdin, writing stdout) on the clip. */
async function runFfmpeg(clip: Buffer, args: string[]): Promise<number> {
  const { ffmpeg } = findFfmpeg();
  const child = spawn(ffmpeg, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'mp4', '-i', 'pipe:0', ...args, 'pipe:1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  Readable.from([clip]).pipe(child.stdin);
  const bytes = await drain(child.stdout);
  const code = await exited;
  if (code !== 0) throw new Error(`ffmpeg ${args.join(' ')} exited with ${code}`);
  return bytes;
}

async function measure(seconds: number, repeat: number, once: () => Promise<number>): Promise<Run> {
  const runs: Run[] = [];
  for (let i = 0; i < repeat; i++) {
    const cpu0 = reapedChildrenCpu();
    const t0 = process.hrtime.bigint();
    const bytes = await once();
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    // 'close' has fired: the child is reaped and its CPU is in cutime/cstime.
    const cpu = reapedChildrenCpu() - cpu0;
    runs.push({ cpuPerVideoSecond: round(cpu / seconds), wallPerVideoSecond: round(wall / seconds), outputMiB: round(bytes / 2 ** 20) });
  }
  const median = <K extends keyof Run>(k: K): number => runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
  return { cpuPerVideoSecond: median('cpuPerVideoSecond'), wallPerVideoSecond: median('wallPerVideoSecond'), outputMiB: median('outputMiB') };
}

/** `n` face-sized regions (about 1/5 of the picture's height, a face at a few metres) spread over the frame, active all clip long. */
function faceRegions(n: number, seconds: number): TimedRegion[] {
  return Array.from({ length: n }, (_, i) => ({
    fromMs: 0,
    toMs: seconds * 1000,
    box: { x: 150 + (i % 4) * 420, y: 200 + Math.floor(i / 4) * 420, width: 180, height: 220 },
  }));
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export async function benchClipBlur(): Promise<object> {
  const seconds = Number(process.env.CAMVEIL_BENCH_SECONDS ?? 10);
  const repeat = Number(process.env.CAMVEIL_BENCH_REPEAT ?? 3);
  const { ffmpeg, origin } = findFfmpeg();
  const clip = benchClip(seconds);
  const blur = (n: number) => async (): Promise<number> => {
    const filter = clipBlurFilter(faceRegions(n, seconds), SIZE)!;
    const { body, done } = blurClip(Readable.from([clip]), filter, { ffmpegPath: ffmpeg, logger: silentLogger(), clip: { cameraId: 'bench', eventId: `bench-${n}` } });
    const bytes = await drain(body);
    await done;
    return bytes;
  };
  process.stderr.write('  copy…\n');
  const copy = await measure(seconds, repeat, () => runFfmpeg(clip, ['-map', '0:v:0', '-c', 'copy', ...FRAGMENTED_MP4_ARGS]));
  process.stderr.write('  reencode…\n');
  const reencode = await measure(seconds, repeat, () => runFfmpeg(clip, ['-map', '0:v:0', '-vsync', 'passthrough', ...CLIP_ENCODER_ARGS, ...FRAGMENTED_MP4_ARGS]));
  const blurred: Record<string, Run> = {};
  const ownCpu: number[] = [];
  for (const n of [1, 4, 8]) {
    process.stderr.write(`  blur with ${n} region(s)…\n`);
    blurred[`blur${n}`] = await measure(seconds, repeat, blur(n));
  }
  process.stderr.write('  face scan at 2 fps…\n');
  const engine = await FaceEngine.open();
  let scanned = 0;
  const scan = await measure(seconds, repeat, async () => {
    const own0 = process.cpuUsage();
    const result = await scanClipFaces(clip, {
      ffmpegPath: ffmpeg,
      cameraId: 'bench',
      eventId: 'bench-scan',
      analysis: { width: 640, height: 360 },
      fps: 2,
      startedAt: 0,
      check: async (_camera, frame) => (await engine.detect({ width: frame.width, height: frame.height, data: new Uint8Array(frame.data), channels: 3 }, { pad: 'never', detector: 'tiny' })).map((f) => f.box),
    });
    scanned = result.frames.length;
    const own = process.cpuUsage(own0);
    ownCpu.push((own.user + own.system) / 1e6);
    return 0;
  });
  engine.unload();
  const ownMedian = ownCpu.sort((a, b) => a - b)[Math.floor(ownCpu.length / 2)]!;
  blurred.scan = { ...scan, cpuPerVideoSecond: round(scan.cpuPerVideoSecond + ownMedian / seconds) };
  const ratios: Record<string, { cpuVsReencode: number; cpuVsCopy: number }> = {};
  for (const [name, run] of Object.entries({ reencode, ...blurred })) {
    ratios[name] = { cpuVsReencode: round(run.cpuPerVideoSecond / reencode.cpuPerVideoSecond), cpuVsCopy: round(run.cpuPerVideoSecond / copy.cpuPerVideoSecond) };
  }
  return {
    clip: { ...SIZE, fps: FPS, seconds, bitrate: '4M', inputMiB: round(clip.length / 2 ** 20), source: 'testsrc2 + noise' },
    ffmpeg: origin,
    encoder: CLIP_ENCODER_ARGS.join(' '),
    repeat,
    runs: { copy, reencode, ...blurred },
    scanFrames: scanned,
    ratios,
  };
}
