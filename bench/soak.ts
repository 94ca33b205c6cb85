import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { AppClient } from '../src/control/app-client.js';
import { Pairing } from '../src/control/pairing.js';
import { findFfmpeg } from '../src/cameras/ffmpeg-binary.js';
import { validateConfig } from '../src/config/load.js';
import { Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { localRequest } from '../src/policy/consent-service.js';
import { freePort } from '../test/harness/mosquitto.js';
import { startReceiver } from '../src/receiver/server.js';
import { openDatabase } from '../src/store/database.js';

/**
 * `npm run bench -- soak`: the hub left running as a household would run it, for CAMVEIL_BENCH_SECONDS
 * (default 600). Two cameras (a photo of three faces, with a box crossing it for 2 s every 20 s), face
 * recognition allowed, clips sealed and uploaded to a local receiver, the embedded broker, and a paired app
 * sending a signed `consent/get` every second. Every 10 s: RSS and V8 heap, open file descriptors, child
 * processes. Reports the RSS and heap slopes after the first fifth (warm-up) by least squares, in MiB per
 * hour, the event-loop delay p99, the commands answered, and the clips made against those expected.
 */

const PERIOD = 20;
const TOKEN = 'soak-bench-token-0123456789abcdef';

function soakVideo(): string {
  const dir = fileURLToPath(new URL('../.cache/bench/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `soak-faces-${PERIOD * 3}s.mp4`);
  if (existsSync(file)) return file;
  const photo = path.join(path.dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo', 'sample1.jpg');
  const x = `if(between(mod(t,${PERIOD}),1,3),50+(mod(t,${PERIOD})-1)*500,-400)`;
  const r = spawnSync(findFfmpeg().ffmpeg, [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-loop', '1', '-framerate', '15', '-t', String(PERIOD * 3), '-i', photo,
    '-f', 'lavfi', '-i', `color=c=white:size=160x160:rate=15:duration=${PERIOD * 3}`,
    '-filter_complex', `[0:v]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,format=yuv420p[bg];[1:v]format=yuv420p[b];[bg][b]overlay=x='${x}':y=520:eval=frame,format=yuv420p[out]`,
    '-map', '[out]', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '15', '-bf', '0', `${file}.part.mp4`,
  ]);
  if (r.status !== 0) throw new Error(`cannot make the soak video: ${r.stderr.toString()}`);
  renameSync(`${file}.part.mp4`, file);
  return file;
}

/** Processes whose parent is this one (ffmpeg per camera, the clip blurrers, …). */
function childProcesses(): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) n += 1;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

/** Least-squares slope of y over x. */
function slope(points: ReadonlyArray<{ x: number; y: number }>): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return sxx === 0 ? Number.NaN : sxy / sxx;
}

const MiB = 2 ** 20;
const r1 = (x: number): number => Math.round(x * 10) / 10;

export async function benchSoak(): Promise<object> {
  const seconds = Number(process.env.CAMVEIL_BENCH_SECONDS ?? 600);
  const video = soakVideo();
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-soak-'));
  const receiver = await startReceiver({ dir: path.join(root, 'cloud'), token: TOKEN });
  const tokenFile = path.join(root, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const port = await freePort();
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const config = validateConfig(
    {
      hub: { id: 'soak', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      cameras: ['front', 'back'].map((id) => ({ id, source: `file:${video}`, analysis: { fps: 2, width: 640, height: 360 }, faceRecognition: true })),
      household: { recipients: [recipient] },
      privacy: { faceCapableOverride: true },
      recording: { preRollSeconds: 2, postRollSeconds: 2, maxClipSeconds: 30 },
      uplink: { enabled: true, endpoints: { eu: receiver.url, us: receiver.url, global: receiver.url }, tokenFile },
      mqtt: { url: `mqtt://127.0.0.1:${port}`, embeddedBroker: true },
    },
    'soak config',
    root,
  );
  const gateway = new Gateway({ config, logger: createLogger({ level: 'warn', destination: process.stderr }) });
  let clips = 0;
  gateway.bus.on('clip.ready', () => (clips += 1));
  await gateway.start();
  for (const consent of ['localRecording', 'cloudUpload', 'faceRecognition'] as const) {
    if (consent === 'localRecording') await gateway.consent.acceptPolicy('2021-10-31', localRequest('bench'));
    await gateway.consent.grant(consent, localRequest('bench'));
  }

  // A paired app asking every second.
  const db = openDatabase(config.dataDir);
  const { code } = new Pairing(db).createPairingCode(Date.now());
  db.close();
  const appMqtt = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 1000 });
  const app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: 'soak', timeoutMs: 10_000, identity });
  const paired = await app.pair(code, recipient);
  if (paired.status !== 'ok') throw new Error('soak: pairing failed');
  let answered = 0;
  let failed = 0;
  const commands = setInterval(() => {
    app.request('consent/get', {}, { sign: true }).then(
      (r) => (r.status === 'ok' ? (answered += 1) : (failed += 1)),
      () => (failed += 1),
    );
  }, 1000);

  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const started = Date.now();
  const samples: Array<{ t: number; rssMiB: number; heapMiB: number; fds: number; children: number }> = [];
  const sample = () => {
    const m = process.memoryUsage();
    samples.push({ t: (Date.now() - started) / 1000, rssMiB: r1(m.rss / MiB), heapMiB: r1(m.heapUsed / MiB), fds: readdirSync('/proc/self/fd').length, children: childProcesses() });
  };
  sample();
  while (Date.now() - started < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 10_000));
    sample();
  }
  clearInterval(commands);
  loop.disable();
  const uploaded = receiver.received().length;
  await appMqtt.endAsync();
  await gateway.stop();
  await receiver.close();
  rmSync(root, { recursive: true, force: true });

  const steady = samples.filter((s) => s.t >= seconds / 5);
  const perHour = (key: 'rssMiB' | 'heapMiB') => r1(slope(steady.map((s) => ({ x: s.t / 3600, y: s[key] }))));
  return {
    seconds,
    cameras: 2,
    motionEverySeconds: PERIOD,
    rss: { startMiB: samples[0]?.rssMiB, endMiB: samples.at(-1)?.rssMiB, maxMiB: Math.max(...samples.map((s) => s.rssMiB)), slopeMiBPerHour: perHour('rssMiB') },
    heap: { endMiB: samples.at(-1)?.heapMiB, slopeMiBPerHour: perHour('heapMiB') },
    fds: { min: Math.min(...steady.map((s) => s.fds)), max: Math.max(...steady.map((s) => s.fds)), end: samples.at(-1)?.fds },
    children: { max: Math.max(...samples.map((s) => s.children)), end: samples.at(-1)?.children },
    eventLoopDelayMs: { p50: r1(loop.percentile(50) / 1e6), p99: r1(loop.percentile(99) / 1e6), max: r1(loop.max / 1e6) },
    commands: { answered, failed },
    clips: { made: clips, expected: 2 * Math.floor(seconds / PERIOD), uploaded },
    faces: gateway.faceStats(),
  };
}
