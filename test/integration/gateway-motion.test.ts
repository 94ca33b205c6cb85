import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { validateConfig } from '../../src/config/load.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { probeMediaBuffer } from '../harness/media-probe.js';
import { describeWithPeers } from '../harness/peers.js';
import { startRtspServer, type RtspServer } from '../harness/rtsp-server.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

/** Where test inputs (generated videos) are cached. */
const INPUT_CACHE = fileURLToPath(new URL('../../.cache/', import.meta.url));

const MOTION_AT = 8;
const MOTION_UNTIL = 11;
const PRE_ROLL = 2;
const POST_ROLL = 2;

/** Every regular file under `dir` with its modification time, skipping what cannot be read. */
function listFiles(dir: string, out = new Map<string, number>()): Map<string, number> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    try {
      if (e.isDirectory()) listFiles(p, out);
      else if (e.isFile()) out.set(p, statSync(p).mtimeMs);
    } catch {
      // vanished or unreadable: another process's temporary file
    }
  }
  return out;
}

describeWithPeers(['ffmpeg', 'gst-rtsp-server'], 'gateway with real RTSP cameras', () => {
  const servers: RtspServer[] = [];
  let httpServer: http.Server;
  let dataDir: string;
  let gateway: Gateway;
  const sink = new CapturingSink();
  const events: Array<{ name: keyof CamveilEvents; payload: unknown }> = [];
  const logLines: string[] = [];
  let filesBefore: Map<string, number>;

  beforeAll(async () => {
    const video = motionVideo({ seconds: 24, motionAt: MOTION_AT, motionUntil: MOTION_UNTIL, region: { x0: 0.1, x1: 0.7, y: 0.4 } });
    const open = await startRtspServer({ file: video });
    const masked = await startRtspServer({ file: video });
    const guarded = await startRtspServer({ live: { width: 320, height: 240, fps: 10 }, auth: { user: 'admin', password: 'right-password' } });
    servers.push(open, masked, guarded);
    // An HTTP server where an RTSP camera is expected: answers, but not with video.
    httpServer = http.createServer((_req, res) => res.end('<html>router login</html>'));
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    const httpPort = (httpServer.address() as AddressInfo).port;

    dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-gw-'));
    const passwordFile = path.join(dataDir, 'wrong-password');
    writeFileSync(passwordFile, 'not-the-password\n', { mode: 0o600 });

    const config = validateConfig(
      {
        hub: { id: 'test-hub', region: 'DE' },
        dataDir,
        cameras: [
          // A privacy mask in the top-left corner, away from the motion: it must be black in the clip too.
          { id: 'open', source: open.url, privacyMasks: [[[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]]] },
          // The privacy mask covers the whole band the box moves through: nothing there may count as motion.
          { id: 'masked', source: masked.url, privacyMasks: [[[0, 0.25], [1, 0.25], [1, 0.75], [0, 0.75]]] },
          { id: 'guarded', source: guarded.url, credentials: { username: 'admin', passwordFile } },
          { id: 'nothing-there', source: 'rtsp://127.0.0.1:1/videoMain' },
          { id: 'not-video', source: `rtsp://127.0.0.1:${httpPort}/` },
        ],
        recording: { preRollSeconds: PRE_ROLL, postRollSeconds: POST_ROLL, maxClipSeconds: 30 },
      },
      'test config',
      dataDir,
    );
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(chunk.toString());
        callback();
      },
    });
    const logger = createLogger({ level: 'info', destination });
    gateway = new Gateway({
      config,
      logger,
      sink,
      backoff: { initialMs: 500, maxMs: 2000 },
    });
    for (const name of ['camera.state', 'motion.start', 'motion.end', 'clip.ready', 'snapshot.ready'] as const) {
      gateway.bus.on(name, (payload) => events.push({ name, payload }));
    }
    filesBefore = new Map([...listFiles(dataDir), ...listFiles(os.tmpdir())]);
    await gateway.start();
    // The first event's clip and snapshot; the file ends at 24 s, before it loops there is no other motion.
    // A limit only: on two busy cores the two masked cameras' re-encoding runs slower than real time, and
    // the clip (13 s of media) took more than 40 s of wall time.
    await sink.until((s) => s.clips.length >= 1 && s.snapshots.length >= 1, 120_000);
  }, 180_000);

  afterAll(async () => {
    await gateway?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    httpServer?.close();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  it('turns motion at a known second into exactly one event, on the camera that saw it', () => {
    const starts = events.filter((e) => e.name === 'motion.start').map((e) => e.payload as CamveilEvents['motion.start']);
    expect(starts.map((s) => s.cameraId)).toEqual(['open']);
    // Timed by the media, not the wall clock: the frame's position in the stream (analysis frames leave
    // ffmpeg at a constant rate) says when in the video motion was seen, however busy the machine is.
    const mediaSeconds = starts[0]!.mediaMs! / 1000;
    expect(mediaSeconds).toBeGreaterThanOrEqual(MOTION_AT - 0.5);
    expect(mediaSeconds).toBeLessThan(MOTION_AT + 1.5);
  });

  it('cuts a playable clip from the pre-roll to the post-roll', () => {
    const clip = sink.clips[0]!;
    expect(clip.meta.cameraId).toBe('open');
    expect(clip.summary.endedBy).toBe('motion-stopped');
    const media = probeMediaBuffer(clip.bytes);
    expect(media.codec).toBe('h264');
    // Main stream at its own size (1280x720), not the 640x360 analysis size (re-encoded here: it has a mask).
    expect([media.width, media.height]).toEqual([1280, 720]);
    // Clips are rebased: the first frame is at 0, whatever the stream's own clock said.
    expect(media.firstPts).toBeCloseTo(0, 1);
    // The clip starts at or before motion minus pre-roll (checked on the hub's event times below); how much
    // before depends on keyframes and on when fragments reached the hub, so the bound is the clip's length.
    // It spans the motion and the post-roll: its length is that of the motion plus both rolls.
    const span = MOTION_UNTIL + POST_ROLL - (MOTION_AT - PRE_ROLL);
    expect(media.lastPts).toBeGreaterThan(span - 1.5);
    expect(media.lastPts).toBeLessThan(span + 1.5 + 3);
    expect(clip.summary.durationMs / 1000).toBeCloseTo(media.lastPts - media.firstPts, 0);
    expect(clip.summary.bytes).toBe(clip.bytes.length);
    expect(clip.meta.startedAt).toBeLessThanOrEqual(clip.meta.motionAt - PRE_ROLL * 1000 + 100);
  });

  it('paints the privacy mask into the clip itself (re-encoded), not only into snapshots', () => {
    const { ffmpeg } = findFfmpeg();
    const w = 320;
    const h = 180;
    // One decoded frame from the middle of the clip, in memory (stdin to stdout), as 8-bit grey.
    const r = spawnSync(ffmpeg, ['-v', 'error', '-i', 'pipe:0', '-vf', `select=gte(n\\,20),scale=${w}:${h}`, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'], {
      input: sink.clips[0]!.bytes,
      maxBuffer: 1 << 24,
    });
    expect(r.status, r.stderr?.toString()).toBe(0);
    const grey = r.stdout;
    expect(grey.length).toBe(w * h);
    const mean = (x0: number, y0: number, x1: number, y1: number) => {
      let sum = 0;
      let n = 0;
      for (let y = Math.floor(y0 * h); y < Math.floor(y1 * h); y++) for (let x = Math.floor(x0 * w); x < Math.floor(x1 * w); x++, n++) sum += grey[y * w + x]!;
      return sum / n;
    };
    // Inside the mask (a margin in from its edge): black. The bars beside it: bright.
    expect(mean(0.01, 0.01, 0.18, 0.18)).toBeLessThan(20);
    expect(mean(0.25, 0.02, 0.45, 0.18)).toBeGreaterThan(60);
  });

  it('sends one JPEG snapshot per event, from the analysis frame', () => {
    expect(sink.snapshots).toHaveLength(1);
    const snap = sink.snapshots[0]!;
    expect(snap.eventId).toBe(sink.clips[0]!.meta.eventId);
    expect([snap.width, snap.height]).toEqual([640, 360]);
    expect(snap.jpeg.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
  });

  it('writes no clip or frame bytes under the data directory or the temporary directory', () => {
    const after = new Map([...listFiles(dataDir), ...listFiles(os.tmpdir())]);
    // The test's own input videos (generated under .cache/, which is under /tmp when the checkout is) are
    // the camera's source, not something the gateway wrote: they are left out.
    const touched = [...after].filter(([p, mtime]) => filesBefore.get(p) !== mtime && !p.startsWith(INPUT_CACHE)).map(([p]) => p);
    // The data directory holds only what the test put there, the hub's keys, its database (consent, audit)
    // and the signed audit head (written once something is audited; the face stage's refusals were, but
    // with objects on a frame without a person never reaches it); these are scanned for media bytes below
    // with every other file written meanwhile.
    const held = [...listFiles(dataDir).keys()].map((p) => path.relative(dataDir, p)).sort();
    expect(held.filter((f) => !/^(camveil\.db(-wal|-shm)?|audit-head\.json)$/.test(f))).toEqual(['keys/hub-identity.txt', 'keys/hub-signing-key.pem', 'keys/pseudonym-secret.txt', 'wrong-password']);
    // No file written meanwhile (by anyone) holds a piece of the clip or the snapshot.
    const clip = sink.clips[0]!.bytes;
    const jpeg = sink.snapshots[0]!.jpeg;
    const needles = [0.2, 0.5, 0.8].map((f) => clip.subarray(Math.floor(clip.length * f), Math.floor(clip.length * f) + 64));
    needles.push(jpeg.subarray(Math.floor(jpeg.length / 2), Math.floor(jpeg.length / 2) + 64));
    for (const file of touched) {
      let content: Buffer;
      try {
        if (statSync(file).size > 256 * 1024 * 1024) continue;
        content = readFileSync(file);
      } catch {
        continue;
      }
      for (const needle of needles) expect(content.includes(needle), `${file} holds media bytes`).toBe(false);
    }
  });

  it('reports wrong credentials, an unreachable host and a non-video source on those cameras only', async () => {
    await waitFor('the three broken cameras to report errors', () => {
      const byId = new Map(gateway.state().cameras.map((c) => [c.cameraId, c]));
      return ['guarded', 'nothing-there', 'not-video'].every((id) => byId.get(id)?.error !== undefined);
    }, 20_000);
    const byId = new Map(gateway.state().cameras.map((c) => [c.cameraId, c]));
    expect(byId.get('guarded')!.error!.code).toBe('CAMVEIL_E_CAMERA_AUTH');
    expect(byId.get('guarded')!.health).toBe('failed');
    expect(byId.get('nothing-there')!.error!.code).toBe('CAMVEIL_E_CAMERA_UNREACHABLE');
    expect(byId.get('nothing-there')!.health).toBe('reconnecting');
    expect(byId.get('not-video')!.error!.code).toBe('CAMVEIL_E_CAMERA_NOT_VIDEO');
    // The healthy cameras kept streaming throughout, and kept being analysed.
    expect(byId.get('open')!.health).toBe('streaming');
    expect(byId.get('masked')!.health).toBe('streaming');
    expect(byId.get('masked')!.framesAnalysed).toBeGreaterThan(10);
    expect(byId.get('masked')!.motion.events).toBe(0);
    // State says per camera what the gate allows and why not: nothing was consented to in this test.
    expect(byId.get('open')!.features).toEqual({
      motion: true,
      faceRecognition: { allowed: false, reason: 'policy-not-accepted' },
      localRecording: { allowed: false, reason: 'local-recording-withdrawn' },
      // Objects identify no one: no consent is needed, the region (DE) allows them.
      objectDetection: { allowed: true, reason: 'ok' },
    });
    // The camera's error names it; the logs carry the errors but never the password.
    expect(byId.get('guarded')!.error!.message).toContain('camera guarded');
    const logs = logLines.join('');
    expect(logs).toContain('CAMVEIL_E_CAMERA_AUTH');
    expect(logs).not.toContain('not-the-password');
    expect(JSON.stringify(gateway.state())).not.toContain('not-the-password');
  });
});

describeWithPeers(['ffmpeg', 'gst-rtsp-server'], 'gateway reconnects after the camera goes away', () => {
  it('resumes after the RTSP server is killed and restarted, and reports the outage', async () => {
    let server = await startRtspServer({ live: { width: 640, height: 360, fps: 10 } });
    const port = server.port;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-rc-'));
    const config = validateConfig(
      { hub: { id: 'test-hub', region: 'DE' }, dataDir, cameras: [{ id: 'cam', source: server.url, motion: { enabled: false } }] },
      'test config',
      dataDir,
    );
    const health: string[] = [];
    const gateway = new Gateway({
      config,
      logger: createLogger({ level: 'silent' }),
      sink: new CapturingSink(),
      backoff: { initialMs: 300, maxMs: 1500 },
      stallTimeoutMs: 4000,
    });
    gateway.bus.on('camera.state', (e) => health.push(e.health));
    try {
      await gateway.start();
      const cam = () => gateway.state().cameras[0]!;
      await waitFor('streaming', () => cam().health === 'streaming' && cam().framesIn > 3, 60_000);
      const framesBefore = cam().framesIn;
      server.kill();
      await server.exited;
      await waitFor('the loss to be noticed', () => cam().health !== 'streaming', 10_000);
      expect(cam().outages.at(-1)?.to).toBeUndefined();
      await new Promise((r) => setTimeout(r, 1500));
      server = await startRtspServer({ live: { width: 640, height: 360, fps: 10 }, port });
      await waitFor('streaming again', () => cam().health === 'streaming' && cam().framesIn > framesBefore + 3, 60_000);
      const outage = cam().outages.at(-1)!;
      expect(outage.to).toBeDefined();
      expect(outage.to! - outage.from).toBeGreaterThan(1000);
      expect(cam().restarts).toBeGreaterThanOrEqual(1);
      expect(health).toContain('reconnecting');
      expect(health.at(-1)).toBe('streaming');
    } finally {
      await gateway.stop();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
