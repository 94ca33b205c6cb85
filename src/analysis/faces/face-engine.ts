import * as tf from '@tensorflow/tfjs-core';
import * as faceapi from '@vladmandic/face-api/dist/face-api.node-wasm.js';
import { CamveilError } from '../../errors.js';
import { initBackend, type BackendInfo } from './backend.js';
import { toRgb, type FaceImage, type RgbImage } from './image-input.js';
import { DEFAULT_MANIFEST_PATH, modelDir, verifyModels } from '../model-files.js';
import { disposeNets, loadNets, type FaceNets } from './nets.js';

/**
 * Smallest face side (px, in the source image) whose descriptor we trust. The recognition net works on
 * 150×150 aligned chips: a 40 px face is already upscaled almost 4×, and camera faces smaller than
 * that are mostly blur. Smaller faces are still reported (for redaction), marked `too-small`.
 */
export const MIN_FACE_SIDE = 40;
/** Detections below this SSD score are not reported at all (face-api's default). */
export const MIN_DETECTION_SCORE = 0.5;
/** SSD detections below this score are reported but marked `low-score`: not used for recognition. */
export const MIN_QUALITY_SCORE = 0.8;

/**
 * The two detectors. `ssd` (SSD MobileNet v1) for photos: enrolment and the CLI. `tiny` (Tiny Face
 * Detector at TINY_INPUT_SIZE) for camera frames. Measured 2026-11-23 on the wasm backend with SIMD, on 17
 * 640×360 frames (the dev set's group photos and face-api's demo photos): SSD 308 ms a frame, tiny 89 ms at
 * 512 (65 ms at 416, 124 ms at 608), with 43 against 45 faces of at least 40 px found (416 finds 39). SSD
 * alone used more than the 250 ms a frame that two cameras at 2 fps allow one worker; landmarks (9.5 ms)
 * and the descriptor (28 ms) per face do not. On camera-scale probes (each dev photo shrunk to a 60 or
 * 90 px face in a 640×360 frame, matched against templates enrolled from the photos with SSD) tiny gave
 * TAR 0.902/0.908 at MATCH_THRESHOLD against SSD's 0.862/0.900, both with no false accept; SSD also missed
 * more of the tight 90 px crops (8 of 39 against 0). `npm run bench -- faces` prints both.
 */
export type FaceDetector = 'ssd' | 'tiny';
/** The tiny detector's square input side (a multiple of 32). */
export const TINY_INPUT_SIZE = 512;
/** Tiny detections below this score are not reported; it scores real faces lower than SSD does. */
export const TINY_MIN_DETECTION_SCORE = 0.4;
/**
 * Tiny detections below this are `low-score`. On the 79 faces SSD also found with a score above 0.8 in the
 * frames above (and the same at 1280×720), tiny's scores had p10 0.64 and median 0.80.
 */
export const TINY_MIN_QUALITY_SCORE = 0.6;
/**
 * Tiny boxes take in hair and chin: on face-api's six demo photos at 640×360 they were 1.35–1.7× as wide
 * as SSD's box of the same face. MIN_FACE_SIDE is meant for SSD-sized boxes, so a tiny box must be this
 * much larger to count as big enough.
 */
export const TINY_BOX_SCALE = 1.5;
/**
 * Borders tried in turn, on every side, as a fraction of the longer image side, when a face may fill
 * the image: SSD misses faces that fill its input. On the 40 tight 150×150 crops of the labelled development set
 * (2026-11-23) one pass with 25% found 31 faces, 40% 35, 60% 37, 100% all 40 (the face then spans a
 * third of the side); but on looser crops 100% scores lower (0.73–0.78 where 25% gives 0.99). Hence 25%
 * first, then 100% only if that found no usable face.
 */
export const PAD_FRACTIONS: readonly number[] = [0.25, 1];
/** The padded copy is scaled down to at most this side first: SSD sees 512×512 anyway, memory stays small. */
export const MAX_PADDED_SIDE = 1024;
/**
 * A face whose box sticks out of the image by more than this fraction of its width or height is
 * `off-frame`. Only a padded pass can see that: SSD clamps its boxes to its own input.
 */
export const MAX_OFF_FRAME = 0.15;

export interface FaceBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface FaceQuality {
  ok: boolean;
  reason?: 'too-small' | 'low-score' | 'off-frame';
}

export interface Face {
  /** In source-image pixels, clipped to the image. */
  box: FaceBox;
  /** Detector confidence, 0..1. */
  score: number;
  /** The 68 landmark points in source-image pixels, when asked for. */
  landmarks?: ReadonlyArray<{ x: number; y: number }>;
  quality: FaceQuality;
}

export interface DetectOptions {
  /**
   * `auto` (default): detect on the image as it is, and only when that finds no usable face again on
   * copies padded by PAD_FRACTIONS — SSD misses faces that fill the whole picture (enrolment photos,
   * close-ups). `never`: one pass on the image as it is — use it for camera frames, where a face never
   * fills the frame and a frame without faces would otherwise cost three passes. `always`: only the
   * padded passes.
   */
  pad?: 'auto' | 'always' | 'never';
  /** Border fractions for the padded passes (default PAD_FRACTIONS). */
  padFractions?: readonly number[];
  /** Also run the landmark net and return the 68 points (describe() reuses them). */
  landmarks?: boolean;
  /** Which detector (default `ssd`; see FaceDetector). */
  detector?: FaceDetector;
}

export interface FaceEngineOptions {
  modelDir?: string;
  manifestPath?: string;
}

export interface FaceEngineStats {
  detectCalls: number;
  describeCalls: number;
}

export { distance } from './descriptor-distance.js';

function judge(box: FaceBox, score: number, outside: number, detector: FaceDetector): FaceQuality {
  if (Math.min(box.width, box.height) < MIN_FACE_SIDE * (detector === 'tiny' ? TINY_BOX_SCALE : 1)) return { ok: false, reason: 'too-small' };
  if (outside > MAX_OFF_FRAME) return { ok: false, reason: 'off-frame' };
  if (score < (detector === 'tiny' ? TINY_MIN_QUALITY_SCORE : MIN_QUALITY_SCORE)) return { ok: false, reason: 'low-score' };
  return { ok: true };
}

function clip(box: FaceBox, width: number, height: number): { box: FaceBox; outside: number } {
  const x0 = Math.max(0, box.x);
  const y0 = Math.max(0, box.y);
  const x1 = Math.min(width, box.x + box.width);
  const y1 = Math.min(height, box.y + box.height);
  const clipped = { x: x0, y: y0, width: Math.max(0, x1 - x0), height: Math.max(0, y1 - y0) };
  const outside = Math.max(1 - clipped.width / box.width, 1 - clipped.height / box.height);
  return { box: clipped, outside };
}

function toTensor(image: RgbImage): tf.Tensor3D {
  return tf.tensor3d(image.data, [image.height, image.width, 3], 'int32');
}

/** face-api's typings carry their own copy of the tfjs classes; at runtime it is the same tfjs-core (see nets.ts). */
const asFaceApi = (t: tf.Tensor3D): faceapi.tf.Tensor3D => t as unknown as faceapi.tf.Tensor3D;

/**
 * Face detection (SSD MobileNet v1 for photos, Tiny Face Detector for camera frames), 68-point landmarks and 128-D descriptors (face-api's dlib-style
 * ResNet) on the hub. Construct, then `load()`; `unload()` frees the nets when no camera may use faces.
 * The model files are verified against models/manifest.json and the verified bytes are the ones loaded.
 */
export class FaceEngine {
  readonly #options: FaceEngineOptions;
  #nets: FaceNets | undefined;
  #backendInfo: BackendInfo | undefined;
  readonly #counters: FaceEngineStats = { detectCalls: 0, describeCalls: 0 };

  constructor(options: FaceEngineOptions = {}) {
    this.#options = options;
  }

  /** Creates and loads an engine. */
  static async open(options: FaceEngineOptions = {}): Promise<FaceEngine> {
    const engine = new FaceEngine(options);
    await engine.load();
    return engine;
  }

  /**
   * Runs `use` with `given` (a caller's loaded engine, e.g. in tests), or else with an engine loaded for
   * this call and unloaded after it, so the nets' memory is held only while someone uses them.
   */
  static async using<T>(use: (engine: FaceEngine) => Promise<T>, given?: FaceEngine): Promise<T> {
    if (given !== undefined) return use(given);
    const engine = await FaceEngine.open();
    try {
      return await use(engine);
    } finally {
      engine.unload();
    }
  }

  get loaded(): boolean {
    return this.#nets !== undefined;
  }

  /** The backend in use, once loaded. */
  get backend(): BackendInfo | undefined {
    return this.#backendInfo;
  }

  /**
   * Verifies the model files, starts the backend and loads the four nets. Idempotent.
   * Throws `CAMVEIL_E_MODEL_INVALID` or `CAMVEIL_E_BACKEND_UNAVAILABLE`.
   */
  async load(): Promise<void> {
    if (this.#nets !== undefined) return;
    const models = await verifyModels('faces', this.#options.modelDir ?? modelDir('faces'), this.#options.manifestPath ?? DEFAULT_MANIFEST_PATH);
    this.#backendInfo = await initBackend();
    this.#nets ??= loadNets(models);
  }

  /** Disposes the nets and their weight tensors; `load()` again to use the engine. */
  unload(): void {
    if (this.#nets === undefined) return;
    disposeNets(this.#nets);
    this.#nets = undefined;
  }

  /** How often detect() and describe() ran since construction: proof that the nets were (not) called. */
  stats(): FaceEngineStats {
    return { ...this.#counters };
  }

  #requireNets(): FaceNets {
    if (this.#nets === undefined) throw new CamveilError('CAMVEIL_E_INTERNAL', 'the face engine is not loaded', { where: 'faces' });
    return this.#nets;
  }

  /**
   * Finds the faces in an image (grey, RGB24 or RGBA; see FaceImage), best score first. Faces are
   * reported even when unusable for recognition; `quality` says whether and why not.
   * Throws `CAMVEIL_E_IMAGE_INVALID` when the pixel buffer does not match the size.
   */
  async detect(image: FaceImage, options: DetectOptions = {}): Promise<Face[]> {
    this.#counters.detectCalls += 1;
    const nets = this.#requireNets();
    const rgb = toRgb(image);
    const pad = options.pad ?? 'auto';
    const input = toTensor(rgb);
    try {
      const detector = options.detector ?? 'ssd';
      let found = pad === 'always' ? [] : await this.#locate(nets, input, 0, rgb, detector);
      if (pad !== 'never') {
        for (const fraction of options.padFractions ?? PAD_FRACTIONS) {
          if (found.some((f) => f.quality.ok)) break;
          const padded = await this.#locate(nets, input, fraction, rgb, detector);
          // An earlier pass's unusable faces stay unless this pass has a usable one.
          if (padded.some((f) => f.quality.ok) || found.length === 0) found = padded;
        }
      }
      found.sort((a, b) => b.score - a.score);
      if (options.landmarks === true) {
        for (const face of found) face.landmarks = await this.#landmarksOf(nets, input, face.box);
      }
      return found;
    } finally {
      input.dispose();
    }
  }

  /** Runs a detector on the image, or on a copy with a border of `padFraction` × the longer side (scaled down to MAX_PADDED_SIDE). */
  async #locate(nets: FaceNets, input: tf.Tensor3D, padFraction: number, image: RgbImage, detector: FaceDetector): Promise<Face[]> {
    const longer = Math.max(image.width, image.height);
    const scale = padFraction === 0 ? 1 : Math.min(1, MAX_PADDED_SIDE / (longer * (1 + 2 * padFraction)));
    const border = Math.round(padFraction * longer * scale);
    const padded =
      padFraction === 0
        ? input
        : tf.tidy(() => {
            const scaled = scale < 1 ? tf.image.resizeBilinear(input, [Math.round(image.height * scale), Math.round(image.width * scale)]) : input;
            return tf.pad(scaled, [[border, border], [border, border], [0, 0]]);
          });
    try {
      const detections =
        detector === 'tiny'
          ? await nets.tinyDetector.locateFaces(asFaceApi(padded), new faceapi.TinyFaceDetectorOptions({ inputSize: TINY_INPUT_SIZE, scoreThreshold: TINY_MIN_DETECTION_SCORE }))
          : await nets.detector.locateFaces(asFaceApi(padded), new faceapi.SsdMobilenetv1Options({ minConfidence: MIN_DETECTION_SCORE, maxResults: 100 }));
      return detections.map((d) => {
        const raw = {
          x: (d.box.x - border) / scale,
          y: (d.box.y - border) / scale,
          width: d.box.width / scale,
          height: d.box.height / scale,
        };
        const { box, outside } = clip(raw, image.width, image.height);
        return { box, score: d.score, quality: judge(box, d.score, outside, detector) };
      });
    } finally {
      if (padded !== input) padded.dispose();
    }
  }

  async #landmarksOf(nets: FaceNets, input: tf.Tensor3D, box: FaceBox): Promise<Array<{ x: number; y: number }>> {
    const [crop] = await faceapi.extractFaceTensors(asFaceApi(input), [new faceapi.Rect(box.x, box.y, box.width, box.height)]);
    if (crop === undefined) return [];
    try {
      const marks = (await nets.landmarks.detectLandmarks(crop)) as faceapi.FaceLandmarks68;
      return marks.shiftBy<faceapi.FaceLandmarks68>(box.x, box.y).positions.map((p) => ({ x: p.x, y: p.y }));
    } finally {
      crop.dispose();
    }
  }

  /**
   * The 128-D descriptor of one face found by detect() in the same image: landmarks (reused when the
   * face carries them), dlib-style alignment, then the recognition net. Compare with distance().
   */
  async describe(image: FaceImage, face: Face): Promise<Float32Array> {
    this.#counters.describeCalls += 1;
    const nets = this.#requireNets();
    const rgb = toRgb(image);
    const input = toTensor(rgb);
    try {
      const points = face.landmarks?.length === 68 ? face.landmarks : await this.#landmarksOf(nets, input, face.box);
      if (points.length !== 68) throw new CamveilError('CAMVEIL_E_NO_FACE', 'no landmarks for this face', { where: 'faces' });
      const dims = { width: rgb.width, height: rgb.height };
      const relative = points.map((p) => new faceapi.Point(p.x / dims.width, p.y / dims.height));
      const aligned = new faceapi.FaceLandmarks68(relative, dims).align(null, { useDlibAlignment: true });
      // The aligned square reaches past the image when the face fills it (tight enrolment crops).
      // face-api would clip it and stretch the rest to 150×150, which distorts the face: a crop 10%
      // inside the detected box measured 0.78 from the same face in the full photo clipped, 0.53 padded
      // with black (as dlib's chip extraction does).
      const left = Math.max(0, Math.ceil(-aligned.x));
      const top = Math.max(0, Math.ceil(-aligned.y));
      const right = Math.max(0, Math.ceil(aligned.x + aligned.width - rgb.width));
      const bottom = Math.max(0, Math.ceil(aligned.y + aligned.height - rgb.height));
      const source = left + top + right + bottom === 0 ? input : tf.pad(input, [[top, bottom], [left, right], [0, 0]]);
      try {
        const square = new faceapi.Rect(aligned.x + left, aligned.y + top, aligned.width, aligned.height);
        const [chip] = await faceapi.extractFaceTensors(asFaceApi(source), [square]);
        if (chip === undefined) throw new CamveilError('CAMVEIL_E_NO_FACE', 'the aligned face lies outside the image', { where: 'faces' });
        try {
          const descriptor = await nets.recognition.computeFaceDescriptor(chip);
          return Array.isArray(descriptor) ? descriptor[0]! : descriptor;
        } finally {
          chip.dispose();
        }
      } finally {
        if (source !== input) source.dispose();
      }
    } finally {
      input.dispose();
    }
  }
}
