import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { findFfmpeg } from '../src/cameras/ffmpeg-binary.js';
import { validateConfig } from '../src/config/load.js';
import { ensureSampleVideo } from '../src/demo/sample-video.js';
import { Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { localRequest } from '../src/policy/consent-service.js';
import { childProcesses, CpuMeter } from './proc-stats.js';

/**
 * `npm run bench -- faces-live`: cameras playing the sample video (faces, pans, cuts; each camera from its
 * own starting point, so that they do not move in step) at 2 fps analysis
 * through the real Gateway, with face recognition allowed, for CAMVEIL_BENCH_SECONDS (default 60) each.
 * Reports, per analyser, how many frames were offered, analysed and dropped by its bounded queue, in all
 * and after the models' warm-up, its backlog over the run (offered − gated out − dropped − analysed: the
 * frames queued or in the worker), and the CPU of the Node process (main thread and workers) and of the
 * cameras' ffmpeg processes. Variants (CAMVEIL_BENCH_VARIANTS, a comma list; default all):
 *
 * - `facesEveryFrame`: two cameras, every analysed frame to the face stage (not only those with motion:
 *   the peak load throughout), objects off: whether two cameras are sustained on two cores.
 * - `facesOnMotion`: four cameras, objects off, faces on frames with motion (today's default): the baseline.
 * - `objects`: four cameras, objects on (people, vehicles, animals on frames with motion), faces looked for
 *   only on people. The goal: no growing backlog and under 2 % of motion frames dropped after warm-up.
 */
const VARIANTS = {
  facesEveryFrame: { cameras: 2, objects: false, facesOnlyWithMotion: false },
  facesOnMotion: { cameras: 4, objects: false, facesOnlyWithMotion: true },
  objects: { cameras: 4, objects: true, facesOnlyWithMotion: true },
} as const;
type VariantName = keyof typeof VARIANTS;

/** What an analyser's stats carry that this bench reads (FaceStageStats and ObjectAnalyserStats both do). */
interface QueueStats {
  loaded: boolean;
  framesOffered: number;
  framesGatedOut: number;
  framesDropped: number;
  framesAnalysed: number;
}

/** Frames offered but not yet answered: waiting in the queue or in the worker. */
const backlogOf = (s: QueueStats): number => s.framesOffered - s.framesGatedOut - s.framesDropped - s.framesAnalysed;

/**
 * Follows one analyser over a run: where its warm-up ended (models loaded, a first frame analysed), and its
 * backlog every sample, to tell a queue that keeps up from one that grows.
 */
class QueueWatch {
  warm: (QueueStats & { at: number }) | undefined;
  readonly backlog: number[] = [];

  sample(s: QueueStats | undefined, at: number): void {
    if (s === undefined) return;
    if (this.warm === undefined && s.loaded && s.framesAnalysed > 0) this.warm = { ...s, at };
    if (this.warm !== undefined) this.backlog.push(backlogOf(s));
  }

  report(last: QueueStats | undefined, started: number, ended: number): object | undefined {
    if (this.warm === undefined || last === undefined) return undefined;
    const offered = last.framesOffered - this.warm.framesOffered;
    const dropped = last.framesDropped - this.warm.framesDropped;
    const analysed = last.framesAnalysed - this.warm.framesAnalysed;
    const half = Math.floor(this.backlog.length / 2);
    const mean = (xs: number[]): number => Math.round((xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)) * 100) / 100;
    return {
      warmUpSeconds: Math.round((this.warm.at - started) / 100) / 10,
      framesOffered: offered,
      framesAnalysed: analysed,
      framesDropped: dropped,
      droppedPercent: offered === 0 ? undefined : Math.round((dropped / offered) * 1000) / 10,
      analysedPerSecond: Math.round((analysed / ((ended - this.warm.at) / 1000)) * 100) / 100,
      // A queue that keeps up has the same backlog in both halves of the run; a growing one does not.
      backlog: { max: Math.max(0, ...this.backlog), meanFirstHalf: mean(this.backlog.slice(0, half)), meanSecondHalf: mean(this.backlog.slice(half)), atEnd: this.backlog.at(-1) },
    };
  }
}

/** The sample video's length in seconds (sample-video.ts: six photos, 10 s each). */
const VIDEO_SECONDS = 60;

/**
 * The sample video started `offset` seconds in (and wrapped round), re-encoded like the original, made
 * once into the cache: so that cameras playing the same video do not pan and cut at the same instant. Four
 * cameras in step would offer the analysers four motion frames at once during every pan and none in the
 * stills, a burst no household's cameras make.
 */
function shiftedVideo(video: string, offset: number): string {
  if (offset === 0) return video;
  const output = video.replace(/\.mp4$/, `-from-${offset}s.mp4`);
  if (existsSync(output)) return output;
  const partial = `${output}.${process.pid}.part.mp4`;
  const { ffmpeg } = findFfmpeg();
  const args = ['-hide_banner', '-loglevel', 'error', '-y', '-stream_loop', '1', '-i', video, '-ss', String(offset), '-t', String(VIDEO_SECONDS),
    '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'main', '-pix_fmt', 'yuv420p', '-g', '15', '-keyint_min', '15', '-sc_threshold', '0', '-bf', '0', '-b:v', '2M',
    '-movflags', '+faststart', partial];
  const run = spawnSync(ffmpeg, args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`ffmpeg could not shift the sample video by ${offset} s: ${run.stderr}`);
  renameSync(partial, output);
  return output;
}

async function runVariant(name: VariantName, video: string, seconds: number): Promise<object> {
  const variant = VARIANTS[name];
  const root = mkdtempSync(path.join(os.tmpdir(), `camveil-faces-live-${name}-`));
  const recipient = await identityToRecipient(await generateX25519Identity());
  const ids = ['a', 'b', 'c', 'd'].slice(0, variant.cameras);
  const config = validateConfig(
    {
      hub: { id: 'bench', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      // Each camera starts at its own point of the video (0, 15, 30, 45 s in).
      cameras: ids.map((id, i) => ({
        id,
        source: `file:${shiftedVideo(video, (i * VIDEO_SECONDS) / ids.length)}`,
        analysis: { fps: 2, width: 640, height: 360 },
        faceRecognition: true,
        objects: { enabled: variant.objects },
      })),
      household: { recipients: [recipient] },
      privacy: { faceCapableOverride: true },
      faceRecognition: { onlyWithMotion: variant.facesOnlyWithMotion },
    },
    'bench config',
    root,
  );
  const gateway = new Gateway({ config, logger: createLogger({ level: 'warn', destination: process.stderr }) });
  await gateway.start();
  await gateway.consent.acceptPolicy('2021-10-31', localRequest('bench'));
  await gateway.consent.grant('faceRecognition', localRequest('bench'));
  const ffmpeg = new CpuMeter();
  ffmpeg.observe(childProcesses());
  const cpu0 = process.cpuUsage();
  const started = Date.now();
  // The workers load their models on the first allowed frame (a second or two, while frames queue up):
  // drops during that warm-up are counted apart from those at steady state.
  const faces = new QueueWatch();
  const objects = new QueueWatch();
  while (Date.now() - started < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 100));
    const now = Date.now();
    faces.sample(gateway.faceStats(), now);
    objects.sample(gateway.objectStats(), now);
    ffmpeg.observe(childProcesses());
  }
  const ended = Date.now();
  const cpu = process.cpuUsage(cpu0);
  const faceStats = gateway.faceStats();
  const objectStats = gateway.objectStats();
  const cameras = gateway.state().cameras.map((c) => ({ id: c.cameraId, framesAnalysedForMotion: c.framesAnalysed, motionEvents: c.motion.events }));
  await gateway.stop();
  rmSync(root, { recursive: true, force: true });
  const elapsed = (ended - started) / 1000;
  return {
    cameras: variant.cameras,
    objects: variant.objects,
    facesOnlyWithMotion: variant.facesOnlyWithMotion,
    perCamera: cameras,
    faces: faceStats,
    facesAfterWarmUp: faces.report(faceStats, started, ended),
    ...(variant.objects ? { objectStats, objectsAfterWarmUp: objects.report(objectStats, started, ended) } : {}),
    // The Node process's own CPU (main thread and the model workers), and the cameras' ffmpeg, as shares of one core.
    nodeCpuCores: Math.round(((cpu.user + cpu.system) / 1e6 / elapsed) * 100) / 100,
    ffmpegCpuCores: Math.round((ffmpeg.cpuSeconds / elapsed) * 100) / 100,
  };
}

export async function benchFacesLive(): Promise<object> {
  const seconds = Number(process.env.CAMVEIL_BENCH_SECONDS ?? 60);
  const requested = (process.env.CAMVEIL_BENCH_VARIANTS ?? Object.keys(VARIANTS).join(',')).split(',').map((v) => v.trim());
  const unknown = requested.filter((v) => !(v in VARIANTS));
  if (unknown.length > 0) throw new Error(`unknown faces-live variant(s): ${unknown.join(', ')}; known: ${Object.keys(VARIANTS).join(', ')}`);
  const video = await ensureSampleVideo(fileURLToPath(new URL('../.cache/demo/', import.meta.url)));
  const results: Record<string, object> = {};
  for (const name of requested as VariantName[]) {
    process.stderr.write(`  faces-live ${name} (${seconds} s)…\n`);
    results[name] = await runVariant(name, video, seconds);
  }
  return { seconds, ...results };
}
