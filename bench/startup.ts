import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { ensureSampleVideo } from '../src/demo/sample-video.js';
import { startReceiver } from '../src/receiver/server.js';
import { CAMVEIL_BIN, runCamveil } from '../test/harness/hub-process.js';
import { freePort } from '../test/harness/mosquitto.js';
import { childProcesses, processSample } from './proc-stats.js';

/**
 * `npm run bench -- startup`: `camveil run` as its own process (`bin/camveil.js`, the sources through tsx,
 * as systemd would start a checkout), on a config like the demo's: one looping sample camera with face
 * recognition granted, sealed to a household recipient, uploaded to a loopback receiver, the embedded broker.
 * Each of CAMVEIL_BENCH_RUNS (default 5) runs gets a fresh data directory whose consents are granted through
 * `camveil consent` beforehand, then measures:
 * - start-up: from spawn to the hub's retained `availability` = `online` on its broker, the last step of
 *   starting (the cameras and the face stage are started before the control plane), as wall time and as the
 *   hub process's own CPU time by then (less sensitive to what else the machine is doing);
 * - memory, after the camera has streamed CAMVEIL_BENCH_SECONDS (default 60: one loop of the sample video):
 *   the hub process's VmRSS and VmHWM from /proc, and its child processes' (ffmpeg) RSS apart.
 * Medians and spread (min–max) over the runs; the readiness signal and the config are meant to stay the
 * same across refactors, so that before/after figures compare.
 */

const MiB = 2 ** 20;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const PACKAGE_ROOT = fileURLToPath(new URL('../', import.meta.url));

interface RunFigures {
  startupMs: number;
  startupCpuSeconds: number;
  vmRssMiB: number;
  vmHwmMiB: number;
  childrenRssMiB: number;
  children: number;
}

/** VmRSS and VmHWM of `pid` in MiB, from /proc/<pid>/status (kB there). */
function memoryOf(pid: number): { vmRssMiB: number; vmHwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (m === null) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { vmRssMiB: r1((kb('VmRSS') * 1024) / MiB), vmHwmMiB: r1((kb('VmHWM') * 1024) / MiB) };
}

/** Resolves once the retained `online` can be read on `url` (connecting again and again until the broker listens). */
function untilOnline(url: string, topic: string, timeoutMs: number): { done: Promise<void>; cancel: () => void } {
  const client = mqtt.connect(url, { reconnectPeriod: 20, connectTimeout: 2_000, clientId: `startup-bench-${process.pid}` });
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no retained online on ${topic} within ${timeoutMs} ms`)), timeoutMs);
    client.on('connect', () => void client.subscribeAsync(topic, { qos: 1 }).catch(() => undefined));
    client.on('error', () => undefined);
    client.on('message', (t, payload) => {
      if (t === topic && payload.toString() === 'online') resolve();
    });
  });
  const cancel = (): void => {
    clearTimeout(timer);
    client.end(true);
  };
  return { done, cancel };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function summary(xs: readonly number[]): { median: number; min: number; max: number } {
  return { median: r1(median(xs)), min: r1(Math.min(...xs)), max: r1(Math.max(...xs)) };
}

async function oneRun(video: string, receiverUrl: string, tokenFile: string, recipient: string, seconds: number): Promise<RunFigures> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-startup-'));
  try {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    const hubId = 'startup-hub';
    const config = path.join(root, 'camveil.json');
    writeFileSync(
      config,
      JSON.stringify({
        hub: { id: hubId, region: 'DE' },
        dataDir: path.join(root, 'hub'),
        cameras: [
          {
            id: 'sample-cam',
            source: `file:${video}`,
            analysis: { fps: 2, width: 640, height: 360 },
            motion: { sensitivity: 0.5, minArea: 0.01 },
            privacyMasks: [[[0.8, 0.75], [1, 0.75], [1, 1], [0.8, 1]]],
            faceRecognition: true,
          },
        ],
        privacy: { faceCapableOverride: true },
        recording: { preRollSeconds: 2, postRollSeconds: 3, maxClipSeconds: 30 },
        household: { recipients: [recipient] },
        uplink: { enabled: true, endpoints: { eu: receiverUrl, us: receiverUrl, cn: receiverUrl, global: receiverUrl }, tokenFile },
        mqtt: { url, embeddedBroker: true },
      }),
    );
    for (const args of [['accept-policy', '2021-10-31'], ['grant', 'localRecording'], ['grant', 'cloudUpload'], ['grant', 'faceRecognition']]) {
      const r = await runCamveil(['consent', ...args, '--config', config]);
      if (r.code !== 0) throw new Error(`camveil consent ${args.join(' ')} failed: ${r.out}`);
    }

    const online = untilOnline(url, `camveil/${hubId}/availability`, 120_000);
    const started = performance.now();
    const child = spawn(process.execPath, [CAMVEIL_BIN, 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      const pid = child.pid;
      if (pid === undefined) throw new Error('camveil run could not be spawned');
      await Promise.race([online.done, exited.then((code) => Promise.reject(new Error(`camveil run exited ${code}: ${stderr}`)))]);
      const startupMs = performance.now() - started;
      const startupCpuSeconds = processSample(pid)?.cpuSeconds ?? Number.NaN;
      online.cancel();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      if (child.exitCode !== null) throw new Error(`camveil run exited ${child.exitCode} while streaming: ${stderr}`);
      const mem = memoryOf(pid);
      const kids = childProcesses(pid);
      return { startupMs: Math.round(startupMs), startupCpuSeconds: r1(startupCpuSeconds), ...mem, childrenRssMiB: r1(kids.reduce((s, k) => s + k.rssBytes, 0) / MiB), children: kids.length };
    } finally {
      online.cancel();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export async function benchStartup(): Promise<object> {
  const loadAtStart = os.loadavg().map(r1);
  const runs = Number(process.env.CAMVEIL_BENCH_RUNS ?? 5);
  const seconds = Number(process.env.CAMVEIL_BENCH_SECONDS ?? 60);
  const video = await ensureSampleVideo(path.join(PACKAGE_ROOT, '.cache', 'demo'));
  const cloud = mkdtempSync(path.join(os.tmpdir(), 'camveil-startup-cloud-'));
  const token = 'startup-bench-token-0123456789abcdef';
  const tokenFile = path.join(cloud, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const receiver = await startReceiver({ dir: path.join(cloud, 'objects'), token });
  const recipient = await identityToRecipient(await generateX25519Identity());
  const figures: RunFigures[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const f = await oneRun(video, receiver.url, tokenFile, recipient, seconds);
      process.stderr.write(`startup run ${i + 1}/${runs}: ${JSON.stringify(f)}\n`);
      figures.push(f);
    }
  } finally {
    await receiver.close();
    rmSync(cloud, { recursive: true, force: true });
  }
  return {
    runs,
    streamedSeconds: seconds,
    loadAverage: { start: loadAtStart, end: os.loadavg().map(r1) },
    startupMs: summary(figures.map((f) => f.startupMs)),
    startupCpuSeconds: summary(figures.map((f) => f.startupCpuSeconds)),
    hub: { vmRssMiB: summary(figures.map((f) => f.vmRssMiB)), vmHwmMiB: summary(figures.map((f) => f.vmHwmMiB)) },
    childrenRssMiB: summary(figures.map((f) => f.childrenRssMiB)),
    perRun: figures,
  };
}
