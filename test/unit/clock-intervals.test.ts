import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, describe, expect, it } from 'vitest';
import { FaceAlbums } from '../../src/faces/face-albums.js';
import { FaceStage } from '../../src/analysis/faces/face-stage.js';
import { AuditLog } from '../../src/audit/audit-log.js';
import { ffmpegMajorVersion, findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { CameraIngest } from '../../src/cameras/ingest.js';
import { CameraPipeline } from '../../src/cameras/camera-pipeline.js';
import { validateConfig } from '../../src/config/load.js';
import { EventBus, type CamveilEvents } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { ConsentLedger, LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { PolicyGate } from '../../src/policy/gate.js';
import { SHIPPED_POLICY_VERSIONS } from '../../src/policy/policy-history.js';
import { openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { SealedPublisher, type UploadItem } from '../../src/publishing/sealed-publisher.js';
import { watchingAnalyser } from '../harness/analyser.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';
import { DEMO, frameOf, testHub } from './face-fixtures.js';

/**
 * Intervals inside the hub run on elapsed time (src/clock.ts): a step of the wall clock — here injected,
 * an hour back — must neither stretch nor shorten them. Each test fails on the code before the fix it covers.
 */

const HOUR = 3_600_000;
const ACTOR = { actor: LOCAL_OPERATOR, requestDigest: 'a'.repeat(64) };
const inForce = SHIPPED_POLICY_VERSIONS.at(-1)!;
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'camveil-intervals-'));
  dirs.push(d);
  return d;
}

describe('face albums: the publish interval', () => {
  it('after the wall clock steps back an hour, the next album follows one interval later, in the same run and after a restart', async () => {
    const dataDir = tmp();
    const db = openDatabase(dataDir);
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const ledger = new ConsentLedger(db);
    const audit = new AuditLog(db);
    ledger.acceptPolicy(inForce.version, ACTOR);
    for (const c of ['cloudUpload', 'faceRecognition'] as const) ledger.grant(c, { ...ACTOR, policyVersion: inForce.version });
    const gate = new PolicyGate({
      ledger,
      region: 'DE',
      policy: { inForce, history: SHIPPED_POLICY_VERSIONS },
      forcedLocalOnly: false,
      cameras: () => new Map(),
      audit,
      cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
    });
    const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
    const bus = new EventBus();
    const person = 'person_aaaaaaaaaaaaaaaa';
    const staged: UploadItem[] = [];
    let wall = Date.now();
    const albums = (): FaceAlbums =>
      new FaceAlbums({
        db,
        bus,
        logger: silentLogger(),
        hub: { identity, recipient },
        publisher: new SealedPublisher({ recipients: () => [recipient], writer: store, uploads: { enqueue: (item) => void staged.push(item) } }),
        store,
        people: { ids: () => [person], revision: () => 1, load: () => Promise.resolve([]) },
        gate,
        cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
        settings: { embeddings: false, maxSightings: 10, intervalMs: 1_000 },
        retentionDays: () => 30,
        audit,
        now: () => wall,
      });
    let sightings = 0;
    const sighted = (): void => {
      sightings += 1;
      bus.emit('face.known', { cameraId: 'porch', personId: person, at: wall, distance: 0.4, sightingId: `sight_${String(sightings).padStart(16, 'a')}` });
    };

    const first = albums();
    await first.start();
    sighted();
    await waitFor('the first album', () => staged.length === 1, 30_000);
    // The clock goes back an hour. The next sighting's album is due one interval after the last: on wall
    // time that would be an hour and a second away.
    wall -= HOUR;
    sighted();
    await waitFor('an album one interval after the step back', () => staged.length === 2, 30_000);

    // Back another hour, and a restart while the clock is behind the last album's time: the interval counts
    // from the start.
    await first.stop();
    wall -= HOUR;
    const second = albums();
    await second.start();
    sighted();
    await waitFor('an album one interval after a restart behind the last one', () => staged.length === 3, 30_000);
    await second.stop();
    expect(new Set(staged.map((s) => s.objectId)).size).toBe(3);
    db.close();
  }, 120_000);
});

describeWithPeers(['ffmpeg'], 'camera ingest: how long a failed run lasted', () => {
  it('a source that is not video, refused at once, stays "not video" when the wall clock steps forward an hour meanwhile', async () => {
    const dir = tmp();
    const notVideo = path.join(dir, 'notes.mp4');
    writeFileSync(notVideo, 'these are not the frames you are looking for\n'.repeat(64));
    const { ffmpeg } = findFfmpeg();
    let step = 0;
    const health: Array<{ health: string; code?: string }> = [];
    const ingest = new CameraIngest({
      cameraId: 'notes',
      resolveSource: () => Promise.resolve({ main: { url: notVideo, kind: 'file' } }),
      analysis: { fps: 2, width: 160, height: 120 },
      ffmpeg,
      ffmpegMajor: ffmpegMajorVersion(ffmpeg),
      logger: silentLogger(),
      backoff: { initialMs: 60_000, maxMs: 60_000 },
      ioTimeoutSeconds: 10,
      // The real ffmpeg; the wall clock jumps an hour forward while it runs (on its exit, which comes before
      // the close the ingest classifies the failure on).
      spawn: ((...args: Parameters<typeof spawn>) => {
        const child = spawn(...args);
        child.once('exit', () => (step += HOUR));
        return child;
      }) as typeof spawn,
      now: () => Date.now() + step,
      handlers: {
        onFrame: () => undefined,
        onStreamEnd: () => undefined,
        onHealth: (h, e) => health.push({ health: h, ...(e === undefined ? {} : { code: e.code }) }),
      },
    });
    ingest.start();
    try {
      await waitFor('the first run to fail', () => ingest.stats().restarts >= 1, 30_000);
    } finally {
      await ingest.stop();
    }
    expect(step).toBe(HOUR);
    // On wall time the run "lasted" an hour, longer than the 10 s socket timeout, and ffmpeg's "Invalid data"
    // read as a frozen camera (reconnecting, STREAM_LOST). It lasted well under a second.
    expect(health.find((h) => h.health !== 'starting')).toEqual({ health: 'failed', code: 'CAMVEIL_E_CAMERA_NOT_VIDEO' });
  }, 60_000);
});

describeWithPeers(['ffmpeg'], 'camera pipeline: the post-roll', () => {
  it('motion ends one post-roll after the last motion when the wall clock steps back an hour in between', async () => {
    const dir = tmp();
    // Motion for 2 s of every 6 (the file loops).
    const video = motionVideo({ seconds: 6, motionAt: 1, motionUntil: 3, width: 640, height: 360 });
    const config = validateConfig(
      {
        hub: { id: 'postroll-hub', region: 'DE' },
        dataDir: path.join(dir, 'hub'),
        cameras: [{ id: 'door', source: `file:${video}`, analysis: { fps: 4, width: 320, height: 180 } }],
        recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 30 },
      },
      'test config',
      dir,
    );
    const bus = new EventBus();
    const ended: Array<CamveilEvents['motion.end']> = [];
    const clips: Array<CamveilEvents['clip.ready']> = [];
    bus.on('motion.end', (e) => ended.push(e));
    bus.on('clip.ready', (e) => clips.push(e));
    let step = 0;
    let motionSeen = false;
    const pipeline = new CameraPipeline({
      camera: config.cameras[0]!,
      recording: config.recording,
      sink: new CapturingSink(),
      bus,
      logger: silentLogger(),
      ffmpeg: findFfmpeg().ffmpeg,
      ffmpegMajor: ffmpegMajorVersion(findFfmpeg().ffmpeg),
      resolveSource: () => Promise.resolve({ main: { url: video, kind: 'file' } }),
      now: () => Date.now() + step,
      // Sees each analysed frame after motion detection: on the first still frame of the first event, the
      // wall clock goes back an hour. The frames after it are dated an hour before the last motion.
      analysers: [
        watchingAnalyser('clock-step', ({ motion, eventId }) => {
          if (motion) motionSeen = true;
          else if (motionSeen && eventId !== undefined && step === 0) step = -HOUR;
        }),
      ],
    });
    pipeline.start();
    try {
      await waitFor('the first clip', () => clips.length >= 1, 90_000);
    } finally {
      await pipeline.stop();
    }
    expect(step).toBe(-HOUR);
    // On wall time the still frames after the step were "an hour before" the last motion: no post-roll
    // passed until the next motion (6 s later) re-dated it, so the first event and clip ran on through it
    // (about 11 s). On elapsed time the clip is pre-roll, 2 s of motion and post-roll: one motion, under 8 s.
    expect(clips[0]).toMatchObject({ endedBy: 'motion-stopped' });
    expect(ended.length).toBeGreaterThanOrEqual(1);
    expect(clips[0]!.durationMs).toBeLessThan(8_000);
  }, 120_000);
});

describe('face stage: the matcher\'s repeat window', () => {
  it('a face seen again a minute later (elapsed) is reported again, though the wall clock went back an hour in between', async () => {
    const hub = testHub({ region: 'DE' });
    hub.acceptAndGrant();
    const bus = new EventBus();
    const stage = new FaceStage({
      gate: hub.gate,
      cameraIds: () => ['front'],
      bus,
      logger: silentLogger(),
      audit: hub.audit,
      cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
      region: hub.state.region,
      policyVersion: hub.policyVersion,
    });
    try {
      const unknown: Array<CamveilEvents['face.unknown']> = [];
      bus.on('face.unknown', (e) => unknown.push(e));
      const photo = await frameOf(path.join(DEMO, 'sample1.jpg'));
      const wall = photo.at;
      // Frames as the ingest makes them: wall time and elapsed time of arrival. Two frames confirm a face;
      // the same face is reported again once 60 s have passed since (MatcherOptions.repeatAfterMs).
      const frames = [
        { at: wall, elapsedMs: 1_000 },
        { at: wall + 500, elapsedMs: 1_500 },
        // 61 s later by elapsed time; the wall clock has gone back an hour.
        { at: wall - HOUR + 61_000, elapsedMs: 62_000 },
        { at: wall - HOUR + 61_500, elapsedMs: 62_500 },
      ];
      for (const [seq, time] of frames.entries()) {
        stage.offer({ cameraId: 'front', frame: { ...photo, ...time, seq }, motion: true });
        await stage.idle();
      }
      // On wall time the second pair came "an hour before" the first report: muted for an hour and a minute.
      expect(unknown.map((e) => e.at)).toEqual([wall + 500, wall - HOUR + 61_500]);
    } finally {
      await stage.stop();
      hub.close();
    }
  }, 120_000);
});
