import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/analysis/faces/backend.js';
import { verifyModels } from '../src/analysis/model-files.js';
import { MotionDetector } from '../src/analysis/motion.js';
import { CenterNet, NATIVE_SIDE } from '../src/analysis/objects/centernet.js';
import { planCrops } from '../src/analysis/objects/crop-planner.js';
import { COCO_CLASSES, DEFAULT_MIN_SCORE, labelOf } from '../src/analysis/objects/object-classes.js';
import { objectFilter } from '../src/analysis/objects/object-filter.js';
import { ObjectTracker } from '../src/analysis/objects/object-tracker.js';
import { ObjectWorkerClient } from '../src/analysis/objects/object-worker-client.js';
import type { Box } from '../src/analysis/box.js';
import { objectsSchema } from '../src/config/schema.js';
import { detectObjects } from '../src/commands/objects-detect.js';
import { cameraScaleFrames, FRAME_HEIGHT, FRAME_WIDTH, type CameraFrame } from './objects-frames.js';
import { fullAnalysis, sampleVideoMotionFrames, type Frame } from './objects-full.js';
import { countsAt, evaluate, thresholdForPrecision, type ImageDetections, type ScoredBox } from './objects-eval.js';
import { loadObjectSet, OBJECT_GROUPS, readLabels, setSummary, type LabelledImage } from './objects-set.js';

/**
 * `npm run bench -- objects`: speed and accuracy of the object detection, the hub's path next to the bare
 * model in the same run, on the labelled set (bench/objects-set/labels.json, photos from npm packages).
 *
 * - Whole images: the hub's path is `camveil objects detect`'s (detectObjects: the image no larger than
 *   1280 px, one full-frame pass letterboxed into the model's square input); the bare model is MB3-CenterNet
 *   called once on the image squashed to 512×512.
 * - Camera scale: each image shrunk into a 640×360 frame over a landscape (objects-frames.ts); the hub's
 *   path is motion regions (the real MotionDetector, the scene alone seen first) → planCrops → the object
 *   worker → the camera filter and tracker; the bare model sees the whole frame squashed to 512×512.
 * - Speed: ms per motion frame, on the camera-scale frames and on the sample camera video's motion frames
 *   (2 fps, 640×360; its pans move most of the picture), ROUNDS times, for both; the hub's path is timed from
 *   the crop plan to the answer (the frame's copy to the worker thread included), the bare call from the
 *   tensor to its boxes, on the main thread with the same wasm backend.
 * - Accuracy: precision and recall per group at the operating threshold and AP50 (objects-eval.ts), a
 *   sweep of thresholds, and the lowest threshold at which person precision reaches 0.9 on both halves.
 * - Full analysis per motion frame of the sample video: objects + faces-on-people against today's
 *   faces-on-motion, in CPU (objects-full.ts), at the proposed threshold.
 */
const ROUNDS = Number(process.env.CAMVEIL_BENCH_ROUNDS ?? 3);
/** The set's own landscape is the scene the camera-scale pictures are pasted into. */
const SCENE_ID = 'stdlib-french-alpine-landscape';
/** Person precision the operating threshold must reach (issue 13's target). */
const TARGET_PERSON_PRECISION = 0.9;
const SWEEP = [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7];
/** The floor both paths report down to (object-net-host.ts SCORE_FLOOR): AP needs the low scores. */
const FLOOR = 0.1;

const round = (x: number | undefined, digits = 3): number | undefined => (x === undefined ? undefined : Number(x.toFixed(digits)));
/** A camera's `objects` settings as the config defaults them (every group, minScore, minArea, no zones). */
const CAMERA_OBJECTS = objectsSchema.parse({});

interface Rgb {
  width: number;
  height: number;
  data: Uint8Array;
}

/** The bare model: the whole frame squashed to the net's native 512×512, one call, boxes scaled back. */
async function bareDetect(net: CenterNet, frame: Rgb): Promise<ScoredBox[]> {
  const input = tf.tensor4d(frame.data, [1, frame.height, frame.width, 3], 'float32');
  const squashed = tf.image.resizeBilinear(input, [NATIVE_SIDE, NATIVE_SIDE]);
  input.dispose();
  try {
    const found = await net.detect(squashed, { minScore: FLOOR });
    const sx = frame.width / NATIVE_SIDE;
    const sy = frame.height / NATIVE_SIDE;
    return found.flatMap((d) => {
      const group = labelOf(COCO_CLASSES[d.classIndex] ?? '');
      return group === undefined ? [] : [{ group, score: d.score, box: { x: d.box.x * sx, y: d.box.y * sy, width: d.box.width * sx, height: d.box.height * sy } }];
    });
  } finally {
    squashed.dispose();
  }
}

/**
 * The hub's path on one camera frame with its motion regions: crops, the worker, the camera's filter (the
 * default tracked classes and minArea, no zones) and its tracker, as ObjectAnalyser chains them. The tracker
 * gets what passes the operating threshold; the returned detections are those passing every other
 * condition at any score (for AP).
 */
async function hubDetect(client: ObjectWorkerClient, frame: Rgb, regions: readonly Box[], tracker: ObjectTracker, at: number): Promise<{ detections: ScoredBox[]; crops: number }> {
  const crops = planCrops(regions, frame);
  const { detections } = await client.detect(frame, crops);
  const anyScore = objectFilter({ ...CAMERA_OBJECTS, minScore: 0 }, frame);
  const kept = detections.flatMap((d) => anyScore(d) ?? []);
  tracker.update(at, kept.filter((d) => d.score >= CAMERA_OBJECTS.minScore));
  return { crops: crops.length, detections: kept.map((d) => ({ group: d.label, score: d.score, box: d.box })) };
}

/** The motion regions the hub would crop around: the scene seeds a fresh detector (config defaults), then the frame. */
async function motionRegionsOf(frame: CameraFrame): Promise<Box[]> {
  const detector = new MotionDetector({ width: frame.width, height: frame.height, zones: [], privacyMasks: [], sensitivity: 0.5, minArea: 0.005 });
  const base = { cameraId: 'bench', seq: 0, width: frame.width, height: frame.height };
  await detector.update({ ...base, at: 0, data: frame.background });
  const result = await detector.update({ ...base, seq: 1, at: 500, data: frame.data });
  return result.regions;
}

function stats(ms: number[]): { median: number | undefined; mean: number | undefined; p90: number | undefined } {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number): number | undefined => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: round(at(0.5), 1), mean: round(ms.reduce((s, x) => s + x, 0) / Math.max(1, ms.length), 1), p90: round(at(0.9), 1) };
}

function report(images: readonly ImageDetections[], minScore: number): object {
  const r = evaluate(images, OBJECT_GROUPS, minScore);
  return Object.fromEntries(
    Object.entries(r).map(([g, v]) => [g, { positives: v.positives, tp: v.truePositives, fp: v.falsePositives, precision: round(v.precision), recall: round(v.recall), ap50: round(v.ap50) }]),
  );
}

function sweep(images: readonly ImageDetections[]): object[] {
  return SWEEP.map((minScore) => ({
    minScore,
    ...Object.fromEntries(
      OBJECT_GROUPS.map((g) => {
        const c = countsAt(images, g, minScore);
        return [g, { precision: round(c.precision), recall: round(c.recall) }];
      }),
    ),
  }));
}

/**
 * ms per frame of both ways over `frames` (each with its motion regions), ROUNDS passes, the two calls
 * interleaved frame by frame so that other load falls on both alike.
 */
async function timeBoth(client: ObjectWorkerClient, net: CenterNet, tracker: ObjectTracker, frames: readonly Frame[]): Promise<object> {
  const hubMs: number[] = [];
  const bareMs: number[] = [];
  let crops = 0;
  let at = 1_000_000;
  for (let r = 0; r < ROUNDS; r++) {
    for (const frame of frames) {
      let t = performance.now();
      crops += (await hubDetect(client, frame, frame.regions, tracker, (at += 500))).crops;
      hubMs.push(performance.now() - t);
      t = performance.now();
      await bareDetect(net, frame);
      bareMs.push(performance.now() - t);
    }
  }
  const hub = stats(hubMs);
  const bare = stats(bareMs);
  return {
    frames: frames.length,
    motionRegionsPerFrame: round(frames.reduce((s, f) => s + f.regions.length, 0) / frames.length, 2),
    cropsPerFrame: round(crops / (frames.length * ROUNDS), 2),
    hubPathMs: hub,
    bareModelMs: bare,
    hubOverBare: round((hub.mean ?? 0) / (bare.mean ?? 1), 2),
  };
}

export async function benchObjects(): Promise<object> {
  const set = await loadObjectSet();
  const scene = set.find((i) => i.id === SCENE_ID);
  if (scene === undefined) throw new Error(`the set has no ${SCENE_ID}`);
  const client = new ObjectWorkerClient();
  await client.load();
  const backend = await initBackend();
  const net = await CenterNet.load(await verifyModels('objects'), [NATIVE_SIDE]);
  try {
    // Whole images.
    const wholeHub: ImageDetections[] = [];
    const wholeBare: ImageDetections[] = [];
    for (const image of set) {
      const rgb = { width: image.width, height: image.height, data: image.data, channels: 3 as const };
      const hub = await detectObjects(client, rgb, 0);
      wholeHub.push({ truth: image.truth, detections: hub.map((o) => ({ group: o.label, score: o.score, box: o.box })) });
      wholeBare.push({ truth: image.truth, detections: await bareDetect(net, image) });
    }

    // Camera scale: accuracy once per frame, then speed over ROUNDS passes.
    const frames = await cameraScaleFrames(set, scene);
    const regions = await Promise.all(frames.map(motionRegionsOf));
    const cameraHub: ImageDetections[] = [];
    const cameraBare: ImageDetections[] = [];
    const tracker = new ObjectTracker();
    let at = 0;
    for (const [i, frame] of frames.entries()) {
      const hub = await hubDetect(client, frame, regions[i]!, tracker, (at += 500));
      cameraHub.push({ truth: frame.truth, detections: hub.detections });
      cameraBare.push({ truth: frame.truth, detections: await bareDetect(net, frame) });
    }
    // Separate scenes: a minute apart, so no track (nor face look) carries from one to the next.
    const cameraFrames = frames.map((f, i): Frame => ({ width: f.width, height: f.height, data: f.data, regions: regions[i]!, at: i * 60_000 }));
    const sample = await sampleVideoMotionFrames();
    const speed = {
      cameraScale: await timeBoth(client, net, tracker, cameraFrames),
      sampleVideo: await timeBoth(client, net, tracker, sample.frames),
    };

    // The operating threshold: the lowest at which the hub's path keeps person precision ≥ 0.9 on both halves.
    const wholeAt = thresholdForPrecision(wholeHub, 'person', TARGET_PERSON_PRECISION);
    const cameraAt = thresholdForPrecision(cameraHub, 'person', TARGET_PERSON_PRECISION);
    const proposed = wholeAt === undefined || cameraAt === undefined ? undefined : Math.ceil(Math.max(wholeAt.minScore, cameraAt.minScore) * 20) / 20;
    // Full analysis per motion frame: objects + faces-on-people against today's faces-on-motion (objects-full.ts).
    const full = process.env.CAMVEIL_BENCH_SKIP_FULL === '1' ? 'skipped (CAMVEIL_BENCH_SKIP_FULL=1)' : await fullAnalysis(client, proposed ?? DEFAULT_MIN_SCORE, sample, cameraFrames);
    return {
      set: { ...setSummary(set), sources: Object.keys(readLabels().sources) },
      backend,
      operatingThreshold: DEFAULT_MIN_SCORE,
      speed: { rounds: ROUNDS, frameSize: `${FRAME_WIDTH}x${FRAME_HEIGHT}`, ...speed },
      accuracy: {
        atOperatingThreshold: DEFAULT_MIN_SCORE,
        whole: { hubPath: report(wholeHub, DEFAULT_MIN_SCORE), bareModel: report(wholeBare, DEFAULT_MIN_SCORE) },
        cameraScale: { hubPath: report(cameraHub, DEFAULT_MIN_SCORE), bareModel: report(cameraBare, DEFAULT_MIN_SCORE) },
      },
      sweep: { whole: { hubPath: sweep(wholeHub), bareModel: sweep(wholeBare) }, cameraScale: { hubPath: sweep(cameraHub), bareModel: sweep(cameraBare) } },
      proposedMinScore: {
        targetPersonPrecision: TARGET_PERSON_PRECISION,
        lowestForWhole: wholeAt,
        lowestForCameraScale: cameraAt,
        minScore: proposed,
        ...(proposed === undefined
          ? {}
          : { whole: { hubPath: report(wholeHub, proposed), bareModel: report(wholeBare, proposed) }, cameraScale: { hubPath: report(cameraHub, proposed), bareModel: report(cameraBare, proposed) } }),
      },
      fullAnalysis: full,
      perImage: set.map((image: LabelledImage, i) => ({
        id: image.id,
        truth: image.truth.filter((t) => t.difficult !== true).length,
        wholeHubAtThreshold: wholeHub[i]!.detections.filter((d) => d.score >= DEFAULT_MIN_SCORE).length,
        cameraHubAtThreshold: cameraHub[i]!.detections.filter((d) => d.score >= DEFAULT_MIN_SCORE).length,
        motionRegions: regions[i]!.length,
      })),
    };
  } finally {
    net.dispose();
    await client.close();
  }
}
