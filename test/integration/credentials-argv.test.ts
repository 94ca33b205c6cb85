import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ffmpegMajorVersion, findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { CameraIngest, type IngestSource } from '../../src/cameras/ingest.js';
import { probeCamera } from '../../src/cameras/probe.js';
import { withCredentials } from '../../src/cameras/source.js';
import { validateConfig } from '../../src/config/load.js';
import type { CamveilError } from '../../src/errors.js';
import { Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { startOnvifDevice, type OnvifDeviceSim } from '../harness/onvif-device.js';
import { describeWithPeers } from '../harness/peers.js';
import { descendants, secretsIn, type SeenProcess } from '../harness/proc-scan.js';
import { startRtspServer, type RtspServer } from '../harness/rtsp-server.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

// Characters that need care in a URL (@ : % /) and in the ffconcat list the URL travels in (').
const PASSWORD = "it's:p@ss%2Fw/rd";
const SECRETS = [PASSWORD, encodeURIComponent(PASSWORD)];
const LIVE = { width: 320, height: 240, fps: 10 };

const require = createRequire(import.meta.url);
/** The 2018 static build npm installs (ffmpeg 4: no per-entry options in ffconcat lists). */
const NPM_FFMPEG = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;

/** Polls every descendant of this process while `during` runs, keeping each process seen (by pid). */
async function watchProcesses<T>(during: Promise<T>, everyMs = 15): Promise<{ result: T; seen: SeenProcess[] }> {
  const seen = new Map<number, SeenProcess>();
  let done = false;
  const polling = (async () => {
    while (!done) {
      for (const p of descendants()) if (p.argv.length > 0) seen.set(p.pid, p);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  try {
    return { result: await during, seen: [...seen.values()] };
  } finally {
    done = true;
    await polling;
  }
}

describeWithPeers(['ffmpeg', 'gst-rtsp-server'], 'camera passwords never in a process argument list or environment', () => {
  let basic: RtspServer;
  let digest: RtspServer;
  let onvif: OnvifDeviceSim;
  let dataDir: string;
  let passwordFile: string;

  beforeAll(async () => {
    basic = await startRtspServer({ live: LIVE, auth: { user: 'admin', password: PASSWORD } });
    digest = await startRtspServer({ live: LIVE, auth: { user: 'admin', password: PASSWORD, method: 'digest' } });
    // An ONVIF camera whose streams are the Basic server's (same host, so credentials go there).
    onvif = await startOnvifDevice({ password: PASSWORD, mainUri: `${basic.url}`, subUri: `${basic.url}` });
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-argv-'));
    passwordFile = path.join(dataDir, 'camera-password');
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([basic?.stop(), digest?.stop(), onvif?.stop()]);
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  it('reads /proc/<pid>/cmdline and environ of every child while cameras with a password stream: no password, no user:pass@', async () => {
    const credentials = { username: 'admin', passwordFile };
    const config = validateConfig(
      {
        hub: { id: 'argv-hub', region: 'DE' },
        dataDir,
        cameras: [
          { id: 'basic', source: basic.url, credentials, motion: { enabled: false } },
          { id: 'digest', source: digest.url, credentials, motion: { enabled: false } },
          { id: 'onvif', source: onvif.xaddr, credentials, motion: { enabled: false } },
        ],
      },
      'test config',
      dataDir,
    );
    const gateway = new Gateway({ config, logger: silentLogger(), sink: new CapturingSink(), backoff: { initialMs: 300, maxMs: 2000 } });
    try {
      await gateway.start();
      const streaming = () => gateway.state().cameras.every((c) => c.health === 'streaming' && c.framesIn > 2);
      const { seen } = await watchProcesses(waitFor('every camera streaming', streaming, 60_000).then(() => new Promise((r) => setTimeout(r, 1000))));
      const ffmpegs = seen.filter((p) => p.name === 'ffmpeg');
      expect(ffmpegs.length).toBeGreaterThanOrEqual(3);
      // Each camera's ffmpeg reads its source from a pipe: no URL at all in its arguments.
      for (const p of ffmpegs) expect(p.argv.join(' ')).not.toMatch(/rtsps?:\/\//);
      expect(seen.flatMap((p) => secretsIn(p, SECRETS))).toEqual([]);
    } finally {
      await gateway.stop();
    }
  }, 120_000);

  it('ffprobe (camveil probe, rtsp and ONVIF) gets the URL through its stdin, never as an argument', async () => {
    const creds = { user: 'admin', password: PASSWORD };
    const { result, seen } = await watchProcesses(
      Promise.all([probeCamera(digest.url, creds, { timeoutMs: 15_000 }), probeCamera(onvif.xaddr, creds, { timeoutMs: 15_000 })]),
      5,
    );
    expect(result[0].streams?.some((s) => s.type === 'video')).toBe(true);
    expect(result[1].mainStream).toMatchObject({ ok: true });
    const probes = seen.filter((p) => p.name === 'ffprobe');
    expect(probes.length).toBeGreaterThanOrEqual(1);
    expect(seen.flatMap((p) => secretsIn(p, SECRETS))).toEqual([]);
  }, 60_000);

  for (const build of ['system', 'npm'] as const) {
    it(`${build} ffmpeg streams through the pipe from Basic and Digest cameras and a file, and names a wrong password CAMERA_AUTH`, async () => {
      const ffmpeg = build === 'system' ? findFfmpeg().ffmpeg : NPM_FFMPEG;
      const ffmpegMajor = ffmpegMajorVersion(ffmpeg);
      expect(ffmpegMajor).toBe(build === 'system' ? 5 : 4);
      const run = async (source: IngestSource) => {
        const health: Array<{ health: string; code?: string }> = [];
        const ingest = new CameraIngest({
          cameraId: `c-${build}`,
          resolveSource: () => Promise.resolve(source),
          analysis: { fps: 2, width: 160, height: 120 },
          ffmpeg,
          ffmpegMajor,
          logger: silentLogger(),
          backoff: { initialMs: 500, maxMs: 2000 },
          handlers: {
            onFrame: () => undefined,
            onStreamEnd: () => undefined,
            onHealth: (h, e?: CamveilError) => health.push({ health: h, ...(e === undefined ? {} : { code: e.code }) }),
          },
        });
        ingest.start();
        try {
          await waitFor(`${build} ffmpeg to stream or fail`, () => ingest.stats().framesIn > 2 || ingest.stats().health === 'failed', 45_000);
          return { stats: ingest.stats(), health };
        } finally {
          await ingest.stop();
        }
      };
      for (const server of [basic, digest]) {
        const ok = await run({ main: { url: withCredentials(server.url, 'admin', PASSWORD), kind: 'rtsp' } });
        expect(ok.stats.health).toBe('streaming');
        expect(ok.stats.fragmentsIn).toBeGreaterThan(0);
        const refused = await run({ main: { url: withCredentials(server.url, 'admin', 'wrong-password'), kind: 'rtsp' } });
        expect(refused.stats.health).toBe('failed');
        expect(refused.stats.error?.code).toBe('CAMVEIL_E_CAMERA_AUTH');
      }
      const file = await run({ main: { url: motionVideo({ seconds: 12, motionAt: 2, motionUntil: 5, width: 640, height: 360 }), kind: 'file' } });
      expect(file.stats.health).toBe('streaming');
    }, 180_000);
  }
});
