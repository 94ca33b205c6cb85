import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { motionGreySpec } from '../src/analysis/motion.js';
import { buildIngestArgs, FRAMES_FD, MOTION_GREY_FD, type IngestCommand } from '../src/cameras/ffmpeg-args.js';
import { ffmpegMajorVersion, findFfmpeg } from '../src/cameras/ffmpeg-binary.js';
import { validateConfig } from '../src/config/load.js';
import { Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { CountingSink } from '../src/recording/counting-sink.js';
import { startRtspServer, type RtspServer } from '../test/harness/rtsp-server.js';
import { SYSTEM_PYTHON } from '../test/harness/system-python.js';
import { CpuMeter, processSample } from './proc-stats.js';

/**
 * `npm run bench -- ingest`: CPU share and memory of the gateway per camera for a 1080p 15 fps H.264
 * stream with 2 fps 640-px analysis (motion detection; objects off), for 1, 2 and 4 cameras, next to
 * baselines measured in the same run on the same streams:
 *  - `copy`: bare `ffmpeg -c copy` of each stream (what recording alone costs);
 *  - `sameFfmpeg`: ffmpeg with exactly the gateway's arguments (copy + decode for analysis, RGB frames and
 *    the motion detector's grey images) writing to /dev/null: the gateway's overhead over this is what Node
 *    adds (frame hand-off, motion, ring, clips);
 *  - `rgbOnlyFfmpeg`: the same without the motion grey output (the command before ffmpeg made it), so the
 *    cost moved from Node into ffmpeg shows.
 * CAMVEIL_BENCH_SECONDS sets the measuring window per run (default 20); CAMVEIL_BENCH_CAMERAS the counts
 * (default "1,2,4"). With CAMVEIL_BENCH_SECONDS=600 and one count, the RSS series shows whether memory
 * stays flat over ten minutes; CAMVEIL_BENCH_ONLY=gateway skips the baselines for such a run.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const ANALYSIS = { fps: 2, width: 640, height: 360 };
const WARMUP_MS = 4000;
/** The idle window measured before the gateway starts (see measureGateway). */
const IDLE_MS = 3000;

interface Measured {
  cpuPerCamera: number;
  rssMiBPerCamera: number;
  rssMiBTotal: number;
}

function benchVideo(seconds: number): string {
  const dir = path.join(ROOT, '.cache', 'bench');
  const file = path.join(dir, `1080p15-${seconds}s.mp4`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const { ffmpeg } = findFfmpeg();
  process.stderr.write(`generating a ${seconds} s 1080p15 test stream (once)…\n`);
  const tmp = `${file}.part.mp4`;
  // testsrc2 moves everywhere: every frame has motion, as on a busy street; 4 Mbit/s like a Foscam main stream.
  const r = spawnSync(
    ffmpeg,
    [
      '-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=1920x1080:rate=15:duration=${seconds}`,
      '-vf', 'noise=alls=4:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-b:v', '4M', '-maxrate', '4M',
      '-bufsize', '8M', '-g', '15', '-keyint_min', '15', '-sc_threshold', '0', '-bf', '0', tmp,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`cannot generate the bench video: ${r.stderr}`);
  renameSync(tmp, file);
  return file;
}

function hasGstRtspServer(): boolean {
  const check = "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer";
  return spawnSync(SYSTEM_PYTHON, ['-c', check], { stdio: 'ignore' }).status === 0;
}

/**
 * This process's children, from the kernel's per-thread child lists: reading every process's stat file
 * (proc-stats' childProcesses) cost the bench process itself about 0.01 of a core, which was counted as
 * the gateway's Node CPU. Falls back to that scan where the lists are missing (kernels without
 * CONFIG_PROC_CHILDREN).
 */
function ownChildren(): NonNullable<ReturnType<typeof processSample>>[] {
  let pids: number[];
  try {
    pids = readdirSync('/proc/self/task').flatMap((tid) => readFileSync(`/proc/self/task/${tid}/children`, 'utf8').split(' ').filter((p) => p !== '').map(Number));
  } catch {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).filter((pid) => processSample(pid)?.ppid === process.pid);
  }
  return pids.map((pid) => processSample(pid)).filter((s) => s !== undefined);
}

/**
 * Calls `onSample` every second for `ms`; resolves with the CPU seconds this process spent in those calls
 * (the instrument's own cost, taken off Node's figure).
 */
async function sampleWhile(ms: number, onSample: () => void): Promise<number> {
  const end = Date.now() + ms;
  let instrument = 0;
  const timed = () => {
    const before = process.cpuUsage();
    onSample();
    const spent = process.cpuUsage(before);
    instrument += (spent.user + spent.system) / 1e6;
  };
  while (Date.now() < end) {
    timed();
    await new Promise((r) => setTimeout(r, 1000));
  }
  timed();
  return instrument;
}

/** Runs bare ffmpeg processes with `argsFor(url)` and measures their CPU and RSS. */
async function measureBare(urls: string[], argsFor: (url: string) => string[] | IngestCommand, seconds: number): Promise<Measured> {
  const { ffmpeg } = findFfmpeg();
  const children: ChildProcess[] = urls.map((u) => {
    const made = argsFor(u);
    const { args, sourceLists } = Array.isArray(made) ? { args: made, sourceLists: [] } : made;
    // Source lists go on the fds the command names (the ingest's way of keeping URLs out of argv).
    const stdio: Array<'ignore' | 'pipe'> = ['ignore', 'ignore', 'ignore', 'ignore'];
    for (const { fd } of sourceLists) {
      while (stdio.length <= fd) stdio.push('ignore');
      stdio[fd] = 'pipe';
    }
    const child = spawn(ffmpeg, args, { stdio });
    for (const { fd, text } of sourceLists) (child.stdio[fd] as Writable | null)?.end(text);
    return child;
  });
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const meter = new CpuMeter();
  let rss = 0;
  const t0 = process.hrtime.bigint();
  await sampleWhile(seconds * 1000, () => {
    const samples = children.map((c) => processSample(c.pid!)).filter((s) => s !== undefined);
    meter.observe(samples);
    rss = Math.max(rss, samples.reduce((sum, s) => sum + s.rssBytes, 0));
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
  return { cpuPerCamera: round(meter.cpuSeconds / wall / urls.length), rssMiBPerCamera: round(rss / 2 ** 20 / urls.length), rssMiBTotal: round(rss / 2 ** 20) };
}

async function measureGateway(urls: string[], kind: 'rtsp' | 'file', seconds: number) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-bench-'));
  const config = validateConfig(
    {
      hub: { id: 'bench', region: 'DE' },
      dataDir,
      // Objects off: this measures the ingest and motion detection; what object detection adds on motion
      // frames is measured by `bench -- objects` and faces-live's objects variant.
      cameras: urls.map((u, i) => ({ id: `cam${i}`, source: kind === 'file' ? `file:${u}` : u, analysis: ANALYSIS, objects: { enabled: false } })),
      recording: { preRollSeconds: 5, postRollSeconds: 10, maxClipSeconds: 30 },
    },
    'bench config',
    dataDir,
  );
  const sink = new CountingSink();
  const gateway = new Gateway({ config, logger: createLogger({ level: 'warn', destination: process.stderr }), sink });
  // What this process costs doing nothing (tsx's loader thread: about 0.008 of a core; a compiled hub runs
  // without it), measured before the gateway starts and taken off Node's figure with the instrument's.
  const idleStart = process.cpuUsage();
  const idleT0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const idleUsage = process.cpuUsage(idleStart);
  const idlePerSecond = (idleUsage.user + idleUsage.system) / 1e6 / (Number(process.hrtime.bigint() - idleT0) / 1e9);
  const cpu0 = process.cpuUsage();
  await gateway.start();
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const nodeCpuStart = process.cpuUsage(cpu0);
  const meter = new CpuMeter();
  const rssSeries: number[] = [];
  const rssEvery30s: number[] = [];
  let ffmpegRss = 0;
  const t0 = process.hrtime.bigint();
  const instrumentSeconds = await sampleWhile(seconds * 1000, () => {
    const kids = ownChildren().filter((p) => p.comm.startsWith('ffmpeg'));
    meter.observe(kids);
    ffmpegRss = Math.max(ffmpegRss, kids.reduce((s, k) => s + k.rssBytes, 0));
    rssSeries.push(process.memoryUsage.rss());
    if ((rssSeries.length - 1) % 30 === 0) rssEvery30s.push(round(rssSeries.at(-1)! / 2 ** 20));
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const nodeCpu = process.cpuUsage(cpu0);
  const nodeCpuSeconds = (nodeCpu.user + nodeCpu.system - nodeCpuStart.user - nodeCpuStart.system) / 1e6 - instrumentSeconds - idlePerSecond * wall;
  const state = gateway.state();
  await gateway.stop();
  rmSync(dataDir, { recursive: true, force: true });
  const n = urls.length;
  const nodeRss = Math.max(...rssSeries);
  const half = Math.floor(rssSeries.length / 2);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    cpuPerCamera: round((meter.cpuSeconds + nodeCpuSeconds) / wall / n),
    nodeCpuPerCamera: round(nodeCpuSeconds / wall / n),
    /** The bench's own sampling and this process's idle cost (shares of a core), already taken off nodeCpuPerCamera. */
    instrumentCpu: round(instrumentSeconds / wall),
    idleCpu: round(idlePerSecond),
    ffmpegCpuPerCamera: round(meter.cpuSeconds / wall / n),
    rssMiBPerCamera: round((nodeRss + ffmpegRss) / 2 ** 20 / n),
    nodeRssMiB: round(nodeRss / 2 ** 20),
    ffmpegRssMiB: round(ffmpegRss / 2 ** 20),
    // Second half of the window against the first: ~0 when memory is flat.
    nodeRssDriftMiB: round((mean(rssSeries.slice(half)) - mean(rssSeries.slice(0, half))) / 2 ** 20),
    nodeRssMiBEvery30s: rssEvery30s,
    framesAnalysed: state.cameras.reduce((s, c) => s + c.framesAnalysed, 0),
    framesDropped: state.cameras.reduce((s, c) => s + c.framesDropped, 0),
    clips: sink.clips.length,
    streaming: state.cameras.filter((c) => c.health === 'streaming').length,
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export async function benchIngest(): Promise<object> {
  const seconds = Number(process.env.CAMVEIL_BENCH_SECONDS ?? 20);
  const counts = (process.env.CAMVEIL_BENCH_CAMERAS ?? '1,2,4').split(',').map(Number);
  // Each run plays the file from its start; it must outlast warm-up plus the window.
  const video = benchVideo(Math.ceil(seconds + WARMUP_MS / 1000 + 10));
  const { ffmpeg, origin } = findFfmpeg();
  const major = ffmpegMajorVersion(ffmpeg);
  const useRtsp = hasGstRtspServer();
  const runs = [];
  for (const n of counts) {
    process.stderr.write(`  ${n} camera(s)…\n`);
    const servers: RtspServer[] = [];
    const fresh = async (): Promise<string[]> => {
      await Promise.all(servers.splice(0).map((s) => s.stop()));
      if (!useRtsp) return Array.from({ length: n }, () => video);
      // One server per camera, so a camera's stream costs the same in every configuration.
      for (let i = 0; i < n; i++) servers.push(await startRtspServer({ file: video }));
      return servers.map((s) => s.url);
    };
    const input = (u: string) => (useRtsp ? ['-rtsp_transport', 'tcp', '-i', u] : ['-re', '-stream_loop', '-1', '-i', u]);
    const baselines = process.env.CAMVEIL_BENCH_ONLY !== 'gateway';
    const skipped: Measured = { cpuPerCamera: NaN, rssMiBPerCamera: NaN, rssMiBTotal: NaN };
    const copy = !baselines ? skipped : await measureBare(await fresh(), (u) => ['-hide_banner', '-nostdin', '-loglevel', 'error', ...input(u), '-map', '0:v:0', '-c', 'copy', '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-y', '/dev/null'], seconds);
    const sameCommand = (withMotionGrey: boolean) => (u: string) => {
      const command = buildIngestArgs({
        main: { url: u, kind: useRtsp ? 'rtsp' : 'file' },
        analysis: ANALYSIS,
        ioTimeoutSeconds: 10,
        ffmpegMajor: major,
        ...(withMotionGrey ? { motionGrey: motionGreySpec(ANALYSIS.width, ANALYSIS.height) } : {}),
      });
      const outputs = new Set(['pipe:1', `pipe:${FRAMES_FD}`, `pipe:${MOTION_GREY_FD}`]);
      return { ...command, args: ['-y', ...command.args].map((a) => (outputs.has(a) ? '/dev/null' : a)) };
    };
    const same = !baselines ? skipped : await measureBare(await fresh(), sameCommand(true), seconds);
    const rgbOnly = !baselines ? skipped : await measureBare(await fresh(), sameCommand(false), seconds);
    const gateway = await measureGateway(await fresh(), useRtsp ? 'rtsp' : 'file', seconds);
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    runs.push({
      cameras: n,
      copy,
      sameFfmpeg: same,
      rgbOnlyFfmpeg: rgbOnly,
      gateway,
      cpuRatioVsCopy: round(gateway.cpuPerCamera / copy.cpuPerCamera),
      cpuRatioVsSameFfmpeg: round(gateway.cpuPerCamera / same.cpuPerCamera),
    });
  }
  return {
    stream: { width: 1920, height: 1080, fps: 15, bitrate: '4M', keyframeInterval: 1, source: useRtsp ? 'gst-rtsp-server' : 'file (no gst-rtsp-server)' },
    analysis: ANALYSIS,
    ffmpeg: { origin, major },
    secondsPerRun: seconds,
    note: 'cpu* = share of one core per camera; rss* in MiB',
    runs,
  };
}
