import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as faceapi from '@vladmandic/face-api/dist/face-api.node-wasm.js';
import sharp from 'sharp';
import { distance, FaceEngine, MIN_DETECTION_SCORE } from '../src/analysis/faces/face-engine.js';
import { readImageFile, type RgbImage } from '../src/analysis/faces/image-input.js';
import { verifyModels } from '../src/analysis/faces/model-files.js';
import { decodeWeightMap, NET_MANIFESTS } from '../src/analysis/faces/nets.js';
import { MATCH_THRESHOLD } from '../src/analysis/faces/threshold.js';

/**
 * `npm run bench -- faces`: accuracy and speed of the face pipeline on ../shared/faces/dev.
 *
 * Accuracy: the best usable face of every person's photo (folders per person; the loose bbt*.jpg group
 * photos are not used here), all genuine (same person) and impostor pair distances, the ROC, the true
 * accept rate at a false accept rate ≤ 0.001 and the threshold that achieves it.
 *
 * Speed: ms per 640×360 frame (the bbt*.jpg group photos cut to 16:9) for camveil's detect() and full
 * pipeline (detect + landmarks + descriptor per usable face), next to the bare face-api calls on the
 * same frames in the same run, with the same nets.
 */
const DEV_DIR = fileURLToPath(new URL('../../shared/faces/dev/', import.meta.url));
const TARGET_FAR = 0.001;
const ROUNDS = 3;

interface Sample {
  person: string;
  file: string;
  descriptor: Float32Array;
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

async function frames(): Promise<RgbImage[]> {
  const files = (await readdir(DEV_DIR)).filter((f) => /^bbt\d+\.jpg$/.test(f)).sort();
  return Promise.all(
    files.map(async (f) => {
      const { data, info } = await sharp(join(DEV_DIR, f)).rotate().resize(640, 360, { fit: 'cover' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { width: info.width, height: info.height, data, channels: 3 as const };
    }),
  );
}

async function timeMs(frameList: RgbImage[], run: (f: RgbImage) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (const f of frameList) await run(f);
  return (performance.now() - start) / frameList.length;
}

export async function benchFaces(): Promise<object> {
  const engine = await FaceEngine.open();
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

  // Speed. The bare face-api pipeline uses face-api's global nets, loaded from the same verified bytes.
  const models = await verifyModels();
  faceapi.nets.ssdMobilenetv1.loadFromWeightMap(decodeWeightMap(models, NET_MANIFESTS.detector) as unknown as faceapi.tf.NamedTensorMap);
  faceapi.nets.faceLandmark68Net.loadFromWeightMap(decodeWeightMap(models, NET_MANIFESTS.landmarks) as unknown as faceapi.tf.NamedTensorMap);
  faceapi.nets.faceRecognitionNet.loadFromWeightMap(decodeWeightMap(models, NET_MANIFESTS.recognition) as unknown as faceapi.tf.NamedTensorMap);
  const options = new faceapi.SsdMobilenetv1Options({ minConfidence: MIN_DETECTION_SCORE, maxResults: 100 });
  const bare = async (f: RgbImage, full: boolean): Promise<number> => {
    const t = tf.tensor3d(f.data, [f.height, f.width, 3], 'int32') as unknown as faceapi.tf.Tensor3D;
    try {
      return full ? (await faceapi.detectAllFaces(t, options).withFaceLandmarks().withFaceDescriptors()).length : (await faceapi.detectAllFaces(t, options)).length;
    } finally {
      t.dispose();
    }
  };
  const ours = async (f: RgbImage, full: boolean): Promise<number> => {
    const faces = await engine.detect(f, { pad: 'never' });
    if (full) for (const face of faces.filter((x) => x.quality.ok)) await engine.describe(f, face);
    return faces.length;
  };
  const frameList = await frames();
  const faceCounts = { camveil: await Promise.all(frameList.map((f) => ours(f, false))), faceApi: [] as number[] };
  for (const f of frameList) faceCounts.faceApi.push(await bare(f, false)); // also warms up
  const best = { detect: Infinity, full: Infinity, bareDetect: Infinity, bareFull: Infinity, autoPadDetect: Infinity };
  for (let round = 0; round < ROUNDS; round++) {
    best.detect = Math.min(best.detect, await timeMs(frameList, (f) => ours(f, false)));
    best.bareDetect = Math.min(best.bareDetect, await timeMs(frameList, (f) => bare(f, false)));
    best.full = Math.min(best.full, await timeMs(frameList, (f) => ours(f, true)));
    best.bareFull = Math.min(best.bareFull, await timeMs(frameList, (f) => bare(f, true)));
    best.autoPadDetect = Math.min(best.autoPadDetect, await timeMs(frameList, (f) => engine.detect(f)));
  }
  faceapi.nets.ssdMobilenetv1.dispose();
  faceapi.nets.faceLandmark68Net.dispose();
  faceapi.nets.faceRecognitionNet.dispose();
  engine.unload();

  return {
    backend: engine.backend,
    accuracy: {
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
    speed: {
      frames: frameList.length,
      frameSize: '640x360',
      facesPerFrame: faceCounts,
      msPerFrame: {
        detect: r(best.detect, 1),
        detectAutoPad: r(best.autoPadDetect, 1),
        fullPipeline: r(best.full, 1),
        faceApiDetect: r(best.bareDetect, 1),
        faceApiFullPipeline: r(best.bareFull, 1),
      },
      note: `best of ${ROUNDS} interleaved rounds; fullPipeline describes usable faces only, face-api's every face found`,
    },
  };
}
