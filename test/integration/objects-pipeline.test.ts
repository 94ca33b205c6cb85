import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AnalysedFrame, DetectedObject, ObjectsAnswer } from '../../src/analysis/frame-analyser.js';
import { CameraPipeline } from '../../src/cameras/camera-pipeline.js';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { validateConfig } from '../../src/config/load.js';
import { EventBus } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { watchingAnalyser } from '../harness/analyser.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';

const ANALYSIS = { fps: 4, width: 320, height: 180 };
const LONG = 90_000;

/**
 * How a camera pipeline orders its analysers when objects are on: the objects analyser first, on frames
 * with motion; the others after its answer — with its people, not at all without people, and as before
 * when it did not look. And how an event's snapshot and record follow what it found. The objects analyser
 * here is a stand-in that answers from a script, so every branch is certain; the real one is in
 * objects-gateway.test.ts.
 */
describeWithPeers(['ffmpeg'], 'camera pipeline: objects first, then the other analysers', () => {
  let root: string;
  let video: string;

  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-objects-pipeline-'));
    // A box moves from 2 s to 6 s and leaves: one motion event per loop.
    video = motionVideo({ seconds: 10, motionAt: 2, motionUntil: 6, width: 640, height: 360 });
  });

  afterAll(() => {
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  /**
   * Runs one camera until its first clip, with a scripted objects analyser: `answer(n)` is its answer for
   * the n-th frame (0-based) it is offered. Returns what the other analyser saw and what the sink got.
   */
  async function run(answer: (n: number, frame: AnalysedFrame) => ObjectsAnswer, camera: Record<string, unknown> = {}) {
    const config = validateConfig(
      {
        hub: { id: 'objects-pipeline', region: 'DE' },
        dataDir: path.join(root, 'data'),
        cameras: [{ id: 'drive', source: `file:${video}`, analysis: ANALYSIS, ...camera }],
        recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 30 },
      },
      'objects pipeline test',
      root,
    );
    const toObjects: AnalysedFrame[] = [];
    const toOthers: AnalysedFrame[] = [];
    const toPlain: AnalysedFrame[] = [];
    const objects = watchingAnalyser('objects', (frame) => {
      const n = toObjects.length;
      toObjects.push(frame);
      frame.onObjects?.(answer(n, frame));
    });
    const sink = new CapturingSink();
    const pipeline = new CameraPipeline({
      camera: config.cameras[0]!,
      recording: config.recording,
      sink,
      bus: new EventBus(),
      logger: silentLogger(),
      ffmpeg: findFfmpeg().ffmpeg,
      ffmpegMajor: 5,
      resolveSource: () => Promise.resolve({ main: { url: video, kind: 'file' } }),
      // A face-stage stand-in (it looks only at people), and a plain analyser that wants every frame.
      analysers: [{ ...watchingAnalyser('faces', (frame) => toOthers.push(frame)), afterObjects: true }, watchingAnalyser('plain', (frame) => toPlain.push(frame))],
      objects,
    });
    pipeline.start();
    try {
      await sink.until((s) => s.clips.length >= 1 && s.snapshots.length >= 1, LONG);
    } finally {
      await pipeline.stop();
    }
    return { toObjects, toOthers, toPlain, clip: sink.clips[0]!, snapshot: sink.snapshots[0]! };
  }

  const person = (score: number, x = 10): DetectedObject => ({ label: 'person', cocoClass: 'person', score, box: { x, y: 20, width: 40, height: 100 } });
  const car: DetectedObject = { label: 'vehicle', cocoClass: 'car', score: 0.9, box: { x: 100, y: 100, width: 80, height: 40 } };

  it('frames with motion go to the objects analyser first, with the motion regions; the others get them only with people', async () => {
    // A person on every third frame, a car on the others.
    const { toObjects, toOthers, toPlain, clip } = await run((n) => (n % 3 === 0 ? [person(0.8)] : [car]));
    // An analyser not marked afterObjects gets every frame at once, with motion or not, people or not.
    const plainSeqs = new Set(toPlain.map((f) => f.frame.seq));
    for (const f of toObjects) expect(plainSeqs.has(f.frame.seq)).toBe(true);
    for (const f of toPlain) expect(f.people).toBeUndefined();
    expect(toObjects.length).toBeGreaterThanOrEqual(3);
    for (const f of toObjects) {
      expect(f.motion).toBe(true);
      expect(f.motionRegions?.length).toBeGreaterThan(0);
    }
    const withMotion = toOthers.filter((f) => f.motion);
    // Only the frames the objects analyser answered with a person, and each carries that person's box.
    expect(withMotion.map((f) => f.frame.seq)).toEqual(toObjects.filter((_, n) => n % 3 === 0).map((f) => f.frame.seq));
    for (const f of withMotion) expect(f.people).toEqual([person(0.8).box]);
    // Frames without motion still reach the other analysers directly (as before), with no people.
    for (const f of toOthers.filter((g) => !g.motion)) expect(f.people).toBeUndefined();
    // The event's record: person before vehicle, the best score of each.
    expect(clip.objects?.labels).toEqual(['person', 'vehicle']);
    expect(clip.objects?.scores).toEqual({ person: 0.8, vehicle: 0.9 });
    expect(clip.objects?.snapshotObject).toEqual({ label: 'person', cocoClass: 'person', score: 0.8, box: person(0.8).box });
  }, LONG);

  it("the snapshot is the frame of the best object of the highest-priority label, not the frame with the most motion", async () => {
    // One frame has the best person (0.95); the others a weaker one or only a car.
    let bestSeq: number | undefined;
    const { clip, snapshot, toObjects } = await run((n, frame) => {
      if (n === 2) {
        bestSeq = frame.frame.seq;
        return [person(0.95, 60), car];
      }
      return n % 2 === 0 ? [person(0.5)] : [car];
    });
    expect(toObjects.length).toBeGreaterThanOrEqual(3);
    const best = toObjects.find((f) => f.frame.seq === bestSeq)!;
    expect(snapshot.at).toBe(best.frame.at);
    expect(clip.objects?.snapshotObject).toMatchObject({ label: 'person', score: 0.95, box: { x: 60 } });
  }, LONG);

  it('when the objects analyser cannot look, the others get every frame as without it; a dropped frame goes nowhere; with objects off it is never asked', async () => {
    const dropped = await run(() => 'dropped');
    expect(dropped.toObjects.length).toBeGreaterThan(0);
    expect(dropped.toOthers.filter((f) => f.motion)).toEqual([]);
    expect(dropped.clip.objects).toBeUndefined();

    const notLooking = await run(() => 'unavailable');
    expect(notLooking.toObjects.length).toBeGreaterThan(0);
    const seqs = new Set(notLooking.toOthers.map((f) => f.frame.seq));
    for (const f of notLooking.toObjects) expect(seqs.has(f.frame.seq)).toBe(true);
    for (const f of notLooking.toOthers) expect(f.people).toBeUndefined();
    // It never answered with a list: the record says nothing about objects.
    expect(notLooking.clip.objects).toBeUndefined();

    const off = await run(() => [person(0.9)], { objects: { enabled: false } });
    expect(off.toObjects).toEqual([]);
    expect(off.toOthers.some((f) => f.motion)).toBe(true);
    expect(off.clip.objects).toBeUndefined();
  }, 3 * LONG);
});
