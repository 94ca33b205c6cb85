import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as faceapi from '@vladmandic/face-api/dist/face-api.node-wasm.js';
import { CamveilError } from '../../errors.js';
import type { VerifiedModels } from '../model-files.js';

// face-api's node-wasm build requires @tensorflow/tfjs, which re-exports the one @tensorflow/tfjs-core
// module imported above: one engine, one tensor class. Its typings bundle their own copy of the tfjs
// declarations, hence the `as unknown as faceapi.tf.…` casts where tensors cross into face-api.
// (Its esm-nobundle build cannot be fed tfjs-core directly: it imports @tensorflow/tfjs and the webgl
// backend through extensionless ESM paths that Node refuses — ERR_MODULE_NOT_FOUND.)

/** The nets camveil runs, with the weights-manifest file each one loads from. */
export const NET_MANIFESTS = {
  detector: 'ssd_mobilenetv1_model-weights_manifest.json',
  tinyDetector: 'tiny_face_detector_model-weights_manifest.json',
  landmarks: 'face_landmark_68_model-weights_manifest.json',
  recognition: 'face_recognition_model-weights_manifest.json',
} as const;

export interface FaceNets {
  /** SSD MobileNet v1: photos (enrolment, the CLI), where a missed or loose face costs more than time. */
  detector: faceapi.SsdMobilenetv1;
  /** Tiny Face Detector: camera frames, about 3.5× faster on the wasm backend (see face-engine.ts). */
  tinyDetector: faceapi.TinyFaceDetector;
  landmarks: faceapi.FaceLandmark68Net;
  recognition: faceapi.FaceRecognitionNet;
}

interface WeightsGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

function invalid(file: string, reason: string): CamveilError {
  return new CamveilError('CAMVEIL_E_MODEL_INVALID', `${file}: ${reason}`, { where: file });
}

/**
 * Decodes one net's weights from already verified bytes (never from disk), so the bytes whose SHA-256
 * was checked are exactly the ones that run. Every .bin the weights manifest names must be a verified file.
 */
export function decodeWeightMap(models: VerifiedModels, manifestName: string): tf.NamedTensorMap {
  const manifestBytes = models.files.get(manifestName);
  if (manifestBytes === undefined) throw invalid(manifestName, 'not among the verified model files');
  let groups: WeightsGroup[];
  try {
    groups = JSON.parse(manifestBytes.toString('utf8')) as WeightsGroup[];
  } catch (error) {
    throw invalid(manifestName, `not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(groups)) throw invalid(manifestName, 'not a weights manifest (array of groups)');
  const buffers: Buffer[] = [];
  const specs: tf.io.WeightsManifestEntry[] = [];
  for (const group of groups) {
    for (const path of group.paths) {
      const bin = models.files.get(basename(path));
      if (bin === undefined) throw invalid(manifestName, `names ${path}, which is not among the verified model files`);
      buffers.push(bin);
    }
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const data = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  try {
    return tf.io.decodeWeights(data, specs);
  } catch (error) {
    throw invalid(manifestName, `weights do not decode: ${(error as Error).message}`);
  }
}

function load<N extends faceapi.NeuralNetwork<unknown>>(net: N, models: VerifiedModels, manifestName: string): N {
  const weightMap = decodeWeightMap(models, manifestName);
  try {
    net.loadFromWeightMap(weightMap as unknown as faceapi.tf.NamedTensorMap);
  } catch (error) {
    Object.values(weightMap).forEach((t) => t.dispose());
    throw invalid(manifestName, `weights do not fit the net: ${(error as Error).message}`);
  }
  return net;
}

/** Fresh net instances (not face-api's global `nets`), loaded from verified bytes. */
export function loadNets(models: VerifiedModels): FaceNets {
  const nets: Partial<FaceNets> = {};
  try {
    nets.detector = load(new faceapi.SsdMobilenetv1(), models, NET_MANIFESTS.detector);
    nets.tinyDetector = load(new faceapi.TinyFaceDetector(), models, NET_MANIFESTS.tinyDetector);
    nets.landmarks = load(new faceapi.FaceLandmark68Net(), models, NET_MANIFESTS.landmarks);
    nets.recognition = load(new faceapi.FaceRecognitionNet(), models, NET_MANIFESTS.recognition);
    return nets as FaceNets;
  } catch (error) {
    disposeNets(nets);
    throw error;
  }
}

export function disposeNets(nets: Partial<FaceNets>): void {
  for (const net of [nets.detector, nets.tinyDetector, nets.landmarks, nets.recognition]) {
    if (net?.isLoaded === true) net.dispose();
  }
}
