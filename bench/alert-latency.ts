import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { MotionDetector } from '../src/analysis/motion.js';
import { analysisFilter, frameBytes } from '../src/cameras/ffmpeg-args.js';
import { findFfmpeg } from '../src/cameras/ffmpeg-binary.js';
import { validateConfig } from '../src/config/load.js';
import { Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { localRequest } from '../src/policy/consent-service.js';
import { freePort } from '../test/harness/mosquitto.js';

/**
 * `npm run bench -- alert-latency`: how soon the household hears of motion. A camera (a file played in real
 * time, looped) shows a white box moving for 1 s every PERIOD seconds; the hub runs with its embedded broker
 * and a subscriber on the event topic. For each of CAMVEIL_BENCH_ONSETS onsets (default 50):
 *  - `toEvent`: from the moment the first frame with motion reached the hub to `motion.start`. The hub
 *    reports the media time of the frame it detected motion on (`mediaMs`) and when that frame arrived
 *    (`at`); the file is played in real time, so the onset frame arrived `mediaMs - onset` before it;
 *  - `toAlert`: the same to the sealed alert's arrival at a broker subscriber (after sealing and signing);
 * next to the baseline, the bare MotionDetector on the same frames decoded by ffmpeg (same size, same fps):
 * its detection delay in media time plus the time of its update() on the detecting frame. Target: p95 of
 * `toAlert` under 1 s.
 */

const PERIOD = 3;
const ANALYSIS = { fps: 5, width: 640, height: 360 };

function periodicMotionVideo(seconds: number): string {
  const dir = fileURLToPath(new URL('../.cache/bench/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `periodic-motion-${seconds}s-p${PERIOD}-v2.mp4`);
  if (existsSync(file)) return file;
  const box = 120;
  // The box moves across in the second second of every period and is off the picture otherwise (the
  // first frame, which the detector takes as its background, is empty).
  const x = `if(between(mod(t,${PERIOD}),1,2),100+(mod(t,${PERIOD})-1)*900,-${2 * box})`;
  const r = spawnSync(findFfmpeg().ffmpeg, [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `smptehdbars=size=1280x720:rate=15:duration=${seconds},hue=s=0.5`,
    '-f', 'lavfi', '-i', `color=c=white:size=${box}x${box}:rate=15:duration=${seconds}`,
    '-filter_complex', `[0:v]format=yuv420p,noise=alls=6:allf=t[bg];[1:v]format=yuv420p[b];[bg][b]overlay=x='${x}':y=300:eval=frame,format=yuv420p[out]`,
    '-map', '[out]', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '15', '-bf', '0', '-t', String(seconds), `${file}.part.mp4`,
  ]);
  if (r.status !== 0) throw new Error(`cannot make the bench video: ${r.stderr.toString()}`);
  renameSync(`${file}.part.mp4`, file);
  return file;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const summary = (values: readonly number[]) => ({ n: values.length, p50: Math.round(percentile(values, 50)), p95: Math.round(percentile(values, 95)), max: Math.round(Math.max(...values)) });

/** The onset (ms of media time) of the motion a frame at `mediaMs` belongs to: 1 s into each period. */
const onsetOf = (mediaMs: number): number => Math.floor((mediaMs - 1000) / (PERIOD * 1000)) * PERIOD * 1000 + 1000;

/** The bare detector on the same frames: detection delay in media time plus its compute time. */
async function bareDetector(video: string, seconds: number, motion: { sensitivity: number; minArea: number }): Promise<{ latencyMs: number[]; updateMs: number[] }> {
  const r = spawnSync(findFfmpeg().ffmpeg, ['-hide_banner', '-loglevel', 'error', '-i', video, '-t', String(seconds), '-vf', analysisFilter(ANALYSIS), '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 4 * 1024 ** 3 });
  if (r.status !== 0) throw new Error(`cannot decode the bench video: ${r.stderr.toString()}`);
  const size = frameBytes(ANALYSIS);
  const detector = new MotionDetector({ width: ANALYSIS.width, height: ANALYSIS.height, zones: [], privacyMasks: [], ...motion });
  const latencyMs: number[] = [];
  const updateMs: number[] = [];
  let lastOnset = -1;
  let active = false;
  let stillSince = 0;
  for (let n = 0; (n + 1) * size <= r.stdout.length; n++) {
    const mediaMs = (n * 1000) / ANALYSIS.fps;
    const data = Buffer.from(r.stdout.subarray(n * size, (n + 1) * size));
    const t0 = process.hrtime.bigint();
    const { motion } = await detector.update({ cameraId: 'bare', at: mediaMs, seq: n, mediaMs, width: ANALYSIS.width, height: ANALYSIS.height, data });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    updateMs.push(ms);
    // Events as the pipeline opens them: a new one once no motion was seen for a second.
    if (motion && !active && mediaMs >= 1000 && onsetOf(mediaMs) !== lastOnset) {
      lastOnset = onsetOf(mediaMs);
      latencyMs.push(mediaMs - lastOnset + ms);
    }
    if (motion) {
      active = true;
      stillSince = mediaMs;
    } else if (active && mediaMs - stillSince >= 1000) active = false;
  }
  return { latencyMs, updateMs };
}

export async function benchAlertLatency(): Promise<object> {
  const onsets = Number(process.env.CAMVEIL_BENCH_ONSETS ?? 50);
  const seconds = (onsets + 1) * PERIOD;
  const video = periodicMotionVideo(seconds);
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-alert-latency-'));
  const port = await freePort();
  const recipient = await identityToRecipient(await generateX25519Identity());
  const config = validateConfig(
    {
      hub: { id: 'bench', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      cameras: [{ id: 'door', source: `file:${video}`, analysis: ANALYSIS }],
      household: { recipients: [recipient] },
      recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 30 },
      mqtt: { url: `mqtt://127.0.0.1:${port}`, embeddedBroker: true },
    },
    'bench config',
    root,
  );
  const gateway = new Gateway({ config, logger: createLogger({ level: 'warn', destination: process.stderr }) });
  const starts: Array<{ emittedAt: number; at: number; mediaMs: number }> = [];
  const alerts: number[] = [];
  gateway.bus.on('motion.start', (e) => {
    if (e.mediaMs !== undefined) starts.push({ emittedAt: Date.now(), at: e.at, mediaMs: e.mediaMs });
  });
  await gateway.start();
  await gateway.consent.acceptPolicy('2021-10-31', localRequest('bench'));
  await gateway.consent.grant('localRecording', localRequest('bench'));
  const subscriber = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 500 });
  await subscriber.subscribeAsync('camveil/+/event');
  subscriber.on('message', () => alerts.push(Date.now()));
  const deadline = Date.now() + (seconds + 30) * 1000;
  while (starts.length < onsets && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 1000));
  await subscriber.endAsync();
  await gateway.stop();
  rmSync(root, { recursive: true, force: true });

  const toEvent: number[] = [];
  const toAlert: number[] = [];
  for (const s of starts) {
    // When the onset frame arrived: the detected frame's arrival less the media time between them.
    const onsetArrived = s.at - (s.mediaMs - onsetOf(s.mediaMs));
    toEvent.push(s.emittedAt - onsetArrived);
    const alert = alerts.find((t) => t >= s.emittedAt);
    if (alert !== undefined && alert - s.emittedAt < PERIOD * 1000) toAlert.push(alert - onsetArrived);
  }
  const { sensitivity, minArea } = config.cameras[0]!.motion;
  const bare = await bareDetector(video, seconds, { sensitivity, minArea });
  return {
    onsets: starts.length,
    periodSeconds: PERIOD,
    analysis: ANALYSIS,
    hub: { toEvent: summary(toEvent), toAlert: summary(toAlert) },
    bareDetector: { fromOnset: summary(bare.latencyMs), updateMs: summary(bare.updateMs) },
    target: { toAlertP95UnderMs: 1000, met: percentile(toAlert, 95) < 1000 },
  };
}
