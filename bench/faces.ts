import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as faceapi from '@vladmandic/face-api/dist/face-api.node-wasm.js';
import sharp from 'sharp';
import { distance, FaceEngine, MIN_DETECTION_SCORE, TINY_INPUT_SIZE, TINY_MIN_DETECTION_SCORE, type FaceDetector } from '../src/analysis/faces/face-engine.js';
import { readImageFile, type RgbImage } from '../src/analysis/faces/image-input.js';
import { verifyModels } from '../src/analysis/model-files.js';
import { decodeWeightMap, NET_MANIFESTS } from '../src/analysis/faces/nets.js';
import { MATCH_THRESHOLD } from '../src/analysis/faces/threshold.js';

/**
 * `npm run bench -- faces`: accuracy and speed of the face pipeline on a labelled face set: CAMVEIL_FACES_DEV_DIR (one folder per person, plus `bbt*.jpg`
 * group photos), else face-api's demo photos.
 *
 * Accuracy: the best usable face of every person's photo (folders per person; the loose bbt*.jpg group
 * photos are not used here), all genuine (same person) and impostor pair distances, the ROC, the true
 * accept rate at a false accept rate ≤ 0.001 and the threshold that achieves it.
 *
 * Camera scale: the same photos shrunk into 640×360 frames and found with each detector (see cameraScale).
 *
 * Speed: ms per 640×360 frame (the bbt*.jpg group photos and face-api's demo photos cut to 16:9) for
 * camveil's detect() and full pipeline (detect + landmarks + descriptor per usable face), per detector,
 * next to the bare face-api calls on the same frames in the same run, with the same nets.
 */
/** The labelled development set, when there is one: one folder of photos per person, and `bbt*.jpg` group photos. */
const DEV_DIR = process.env.CAMVEIL_FACES_DEV_DIR ?? '';
const HAS_DEV = DEV_DIR !== '' && existsSync(DEV_DIR);
const TARGET_FAR = 0.001;
const ROUNDS = 3;

interface Sample {
  person: string;
  file: string;
  descriptor: Float32Array;
}

/** Face sides (px) at which each dev photo is shown to the camera-frame pipeline. */
const PROBE_FACE_SIDES = [60, 90] as const;

/**
 * Camera-scale probes: each usable dev photo shrunk to a `side` px square in the middle of a 640×360 frame
 * whose background is a heavily blurred group photo, JPEG-compressed at quality 80 like a camera's
 * snapshot, then found with `detector` and described as the face worker does (no padding), and compared
 * with the templates enrolled from every other photo (SSD, as enrolment does). The dev photos are tight
 * crops, so `side` is close to the face's own size. A synthetic stand-in for camera frames: the set holds
 * no labelled video.
 */
async function cameraScale(engine: FaceEngine, list: Sample[], detector: FaceDetector, side: number): Promise<object> {
  const background = await sharp(join(DEV_DIR, 'bbt1.jpg')).resize(640, 360, { fit: 'cover' }).blur(20).removeAlpha().raw().toBuffer();
  const genuine: number[] = [];
  const impostor: number[] = [];
  let missed = 0;
  for (const probe of list) {
    const small = await sharp(join(DEV_DIR, probe.person, probe.file)).rotate().resize(side, side).removeAlpha().raw().toBuffer();
    const jpeg = await sharp(background, { raw: { width: 640, height: 360, channels: 3 } })
      .composite([{ input: small, raw: { width: side, height: side, channels: 3 }, left: 320 - side / 2, top: 180 - side / 2 }])
      .jpeg({ quality: 80 })
      .toBuffer();
    const { data, info } = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const frame: RgbImage = { width: info.width, height: info.height, data, channels: 3 };
    const face = (await engine.detect(frame, { pad: 'never', detector })).find((f) => f.quality.ok);
    if (face === undefined) {
      missed += 1;
      continue;
    }
    const descriptor = await engine.describe(frame, face);
    for (const other of list) {
      if (other === probe) continue;
      (other.person === probe.person ? genuine : impostor).push(distance(descriptor, other.descriptor));
    }
  }
  const closestImpostor = Math.min(...impostor);
  return {
    detector,
    faceSide: side,
    probes: list.length,
    noUsableFace: missed,
    genuinePairs: genuine.length,
    impostorPairs: impostor.length,
    atChosen: { threshold: MATCH_THRESHOLD, tar: r(genuine.filter((d) => d < MATCH_THRESHOLD).length / genuine.length), falseAccepts: impostor.filter((d) => d < MATCH_THRESHOLD).length },
    closestImpostor: r(closestImpostor),
    tarBelowClosestImpostor: r(genuine.filter((d) => d < closestImpostor).length / genuine.length),
  };
}

async function samples(engine: FaceEngine): Promise<{ samples: Sample[]; noUsableFace: string[] }> {
  const out: Sample[] = [];
  const noUsableFace: string[] = [];
  const people = (await readdir(DEV_DIR, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  for (const person of people) {
    for (const name of (await readdir(join(DEV_DIR, person))).sort()) {
      const image = await readImageFile(join(DEV_DIR, person, name));
      const best = (await engine.detect(image)).find((f) => f.quality.ok);
      if (best === undefined) {
        noUsableFace.push(`${person}/${name}`);
        continue;
      }
      out.push({ person, file: name, descriptor: await engine.describe(image, best) });
    }
  }
  return { samples: out, noUsableFace };
}

interface RocPoint {
  threshold: number;
  tar: number;
  far: number;
}

/** A pair matches when distance < threshold. One ROC point midway below each distinct pair distance, plus one above all. */
export function roc(genuine: number[], impostor: number[]): RocPoint[] {
  const all = [...new Set([...genuine, ...impostor])].sort((a, b) => a - b);
  const cuts = all.map((d, i) => (i === 0 ? d / 2 : (d + all[i - 1]!) / 2));
  cuts.push(all.length === 0 ? 1 : all[all.length - 1]! + 1e-6);
  return cuts.map((t) => ({
    threshold: t,
    tar: genuine.filter((d) => d < t).length / genuine.length,
    far: impostor.filter((d) => d < t).length / impostor.length,
  }));
}

const r = (x: number, digits = 4): number => Number(x.toFixed(digits));

/** Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const y =
    t *
    Math.exp(
      -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? y : 2 - y;
}

const DEMO_DIR = fileURLToPath(new URL('../node_modules/@vladmandic/face-api/demo/', import.meta.url));

async function frames(): Promise<RgbImage[]> {
  const files = [
    ...(HAS_DEV ? await readdir(DEV_DIR) : []).filter((f) => /^bbt\d+\.jpg$/.test(f)).sort().map((f) => join(DEV_DIR, f)),
    ...(await readdir(DEMO_DIR)).filter((f) => /^sample\d+\.jpg$/.test(f)).sort().map((f) => join(DEMO_DIR, f)),
  ];
  return Promise.all(
    files.map(async (f) => {
      const { data, info } = await sharp(f).rotate().resize(640, 360, { fit: 'cover' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { width: info.width, height: info.height, data, channels: 3 as const };
    }),
  );
}

async function timeMs(frameList: RgbImage[], run: (f: RgbImage) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (const f of frameList) await run(f);
  return (performance.now() - start) / frameList.length;
}

async function accuracyOf(engine: FaceEngine): Promise<object> {
  const { samples: list, noUsableFace } = await samples(engine);
  const genuine: number[] = [];
  const impostor: number[] = [];
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      const d = distance(list[i]!.descriptor, list[j]!.descriptor);
      (list[i]!.person === list[j]!.person ? genuine : impostor).push(d);
    }
  }
  const curve = roc(genuine, impostor);
  const atTarget = curve.filter((p) => p.far <= TARGET_FAR).reduce((best, p) => (p.tar > best.tar || (p.tar === best.tar && p.threshold > best.threshold) ? p : best));
  const at = (t: number): { tar: number; far: number } => ({
    tar: r(genuine.filter((d) => d < t).length / genuine.length),
    far: r(impostor.filter((d) => d < t).length / impostor.length),
  });
  // 665-odd impostor pairs cannot show a FAR of 0.001 (one false accept is already 0.0015): also fit a
  // normal distribution to the impostor distances and read the threshold where its tail holds 0.001.
  const mean = impostor.reduce((a, b) => a + b, 0) / impostor.length;
  const sd = Math.sqrt(impostor.reduce((a, b) => a + (b - mean) ** 2, 0) / (impostor.length - 1));
  const Z_0001 = 3.0902; // standard normal quantile for a one-sided tail of 0.001
  const normalTail = (t: number): number => 0.5 * erfc((mean - t) / (sd * Math.SQRT2));
  const eer = curve.reduce((best, p) => (Math.abs(p.far - (1 - p.tar)) < Math.abs(best.far - (1 - best.tar)) ? p : best));

  const cameraScaleResults: object[] = [];
  for (const detector of ['ssd', 'tiny'] as const) for (const side of PROBE_FACE_SIDES) cameraScaleResults.push(await cameraScale(engine, list, detector, side));

  return {
    ...{
      photos: list.length + noUsableFace.length,
      noUsableFace,
      people: new Set(list.map((s) => s.person)).size,
      genuinePairs: genuine.length,
      impostorPairs: impostor.length,
      genuineDistance: { min: r(Math.min(...genuine)), max: r(Math.max(...genuine)) },
      impostorDistance: { min: r(Math.min(...impostor)), max: r(Math.max(...impostor)) },
      targetFar: TARGET_FAR,
      atTargetFar: { threshold: r(atTarget.threshold), tar: r(atTarget.tar), far: r(atTarget.far) },
      impostorNormalFit: {
        mean: r(mean),
        sd: r(sd),
        thresholdAtFar0001: r(mean - Z_0001 * sd),
        tarThere: at(mean - Z_0001 * sd).tar,
        estimatedFarAtChosen: Number(normalTail(MATCH_THRESHOLD).toExponential(2)),
      },
      equalErrorRate: { threshold: r(eer.threshold), far: r(eer.far), frr: r(1 - eer.tar) },
      chosenThreshold: { threshold: MATCH_THRESHOLD, ...at(MATCH_THRESHOLD) },
      faceApiCustomary06: { threshold: 0.6, ...at(0.6) },
      roc: curve.filter((_, i) => i % 10 === 0).map((p) => ({ threshold: r(p.threshold), tar: r(p.tar), far: r(p.far) })),
    },
    cameraScale: cameraScaleResults,
  };
}

async function speedOf(engine: FaceEngine): Promise<object> {
  // Speed. The bare face-api pipeline uses face-api's global nets, loaded from the same verified bytes.
  const models = await verifyModels('faces');
  faceapi.nets.ssdMobilenetv1.loadFromWeightMap(decodeWeightMap(models, NET_MANIFESTS.detector) as unknown as faceapi.tf.NamedTensorMap);
  faceapi.nets.tinyFaceDetector.loadFromWeightMap(decodeWeightMap(models, NET_MANIFESTS.tinyDetector) as unknown as faceapi.tf.NamedTensorMap);
  faceapi.nets.faceLandmark68Net.loadFromWeightMap(decodeWeightMap(models, NET_MANIFESTS.landmarks) as unknown as faceapi.tf.NamedTensorMap);
  faceapi.nets.faceRecognitionNet.loadFromWeightMap(decodeWeightMap(models, NET_MANIFESTS.recognition) as unknown as faceapi.tf.NamedTensorMap);
  const bareOptions: Record<FaceDetector, faceapi.SsdMobilenetv1Options | faceapi.TinyFaceDetectorOptions> = {
    ssd: new faceapi.SsdMobilenetv1Options({ minConfidence: MIN_DETECTION_SCORE, maxResults: 100 }),
    tiny: new faceapi.TinyFaceDetectorOptions({ inputSize: TINY_INPUT_SIZE, scoreThreshold: TINY_MIN_DETECTION_SCORE }),
  };
  const bare = async (f: RgbImage, detector: FaceDetector, full: boolean): Promise<number> => {
    const t = tf.tensor3d(f.data, [f.height, f.width, 3], 'int32') as unknown as faceapi.tf.Tensor3D;
    try {
      const options = bareOptions[detector];
      return full ? (await faceapi.detectAllFaces(t, options).withFaceLandmarks().withFaceDescriptors()).length : (await faceapi.detectAllFaces(t, options)).length;
    } finally {
      t.dispose();
    }
  };
  const ours = async (f: RgbImage, detector: FaceDetector, full: boolean): Promise<number> => {
    const faces = await engine.detect(f, { pad: 'never', detector });
    if (full) for (const face of faces.filter((x) => x.quality.ok)) await engine.describe(f, face);
    return faces.length;
  };
  const frameList = await frames();
  const speed: Record<string, object> = {};
  for (const detector of ['ssd', 'tiny'] as const) {
    const faceCounts = { camveil: [] as number[], camveilUsable: [] as number[], faceApi: [] as number[] };
    for (const f of frameList) {
      const faces = await engine.detect(f, { pad: 'never', detector });
      faceCounts.camveil.push(faces.length);
      faceCounts.camveilUsable.push(faces.filter((x) => x.quality.ok).length);
      faceCounts.faceApi.push(await bare(f, detector, false)); // also warms up
    }
    const best = { detect: Infinity, full: Infinity, bareDetect: Infinity, bareFull: Infinity };
    for (let round = 0; round < ROUNDS; round++) {
      best.detect = Math.min(best.detect, await timeMs(frameList, (f) => ours(f, detector, false)));
      best.bareDetect = Math.min(best.bareDetect, await timeMs(frameList, (f) => bare(f, detector, false)));
      best.full = Math.min(best.full, await timeMs(frameList, (f) => ours(f, detector, true)));
      best.bareFull = Math.min(best.bareFull, await timeMs(frameList, (f) => bare(f, detector, true)));
    }
    speed[detector] = {
      facesPerFrame: faceCounts,
      msPerFrame: { detect: r(best.detect, 1), fullPipeline: r(best.full, 1), faceApiDetect: r(best.bareDetect, 1), faceApiFullPipeline: r(best.bareFull, 1) },
      overhead: { detect: r(best.detect / best.bareDetect - 1, 3), fullPipeline: r(best.full / best.bareFull - 1, 3) },
    };
  }
  const autoPad = await timeMs(frameList, (f) => engine.detect(f));
  faceapi.nets.ssdMobilenetv1.dispose();
  faceapi.nets.tinyFaceDetector.dispose();
  faceapi.nets.faceLandmark68Net.dispose();
  faceapi.nets.faceRecognitionNet.dispose();
  return {
    frames: frameList.length,
    frameSize: '640x360',
    ...speed,
    ssdDetectWithAutoPadMs: r(autoPad, 1),
    note: `best of ${ROUNDS} interleaved rounds; camveil's fullPipeline describes usable faces only, face-api's every face found; the face worker uses tiny`,
  };
}

export async function benchFaces(): Promise<object> {
  const engine = await FaceEngine.open();
  try {
    // Accuracy needs photos labelled by person; speed runs on face-api's demo photos (and the set's group photos).
    const accuracy = HAS_DEV ? await accuracyOf(engine) : { skipped: 'no labelled face set: set CAMVEIL_FACES_DEV_DIR to one folder of photos per person' };
    return { backend: engine.backend, accuracy, speed: await speedOf(engine) };
  } finally {
    engine.unload();
  }
}
