import sharp from 'sharp';
import type { AnalysisFrame, GreyImage } from '../cameras/frame.js';
import type { Polygon } from '../config/schema.js';
import { CamveilError } from '../errors.js';
import type { Box } from './box.js';
import { paintRuns, privacyMaskRuns, rasterisePolygons, watchMask } from './mask.js';
import { motionRegions } from './motion-regions.js';

/**
 * Frame-differencing motion detection against a slowly adapting background, in the spirit of Frigate's
 * motion detector (frigate/motion/improved_motion.py) and with comparable defaults.
 */

/**
 * Width of the greyscale image that is compared. Frigate compares at 100 px high by default
 * (`motion.frame_height`); 160 px wide is 90 px high for 16:9. Averaging ~16 source pixels into one
 * also divides independent sensor noise by about 4.
 */
const ANALYSIS_WIDTH = 160;
/** A light blur after downscaling removes the remaining pixel noise and H.264 block edges. */
const BLUR_SIGMA = 1;
/** Below this width the small image is not blurred (a blur would smear the whole of it). */
const MIN_BLURRED_WIDTH = 8;
/**
 * Per-pixel threshold in grey levels at sensitivity 0 and 1; linear in between. 0.5 gives 28, close to
 * Frigate's default `motion.threshold` of 30. 6 keeps a margin of 3 over the noise measured on our test
 * video (H.264 at 640x360 with temporal noise): after downscale and blur no pixel of a still scene ever
 * differed by more than 2 grey levels, against 13 at full resolution.
 */
const THRESHOLD_AT_SENSITIVITY_0 = 50;
const THRESHOLD_AT_SENSITIVITY_1 = 6;
/**
 * Time constant of the background's running average. Frigate uses alpha 0.01 per frame at 5 fps (20 s);
 * ours is in time so it does not depend on the analysis fps. Slow lighting drift is followed as it happens;
 * something that arrives and stays (a parked car) fades in after one to two minutes, because changed
 * pixels adapt slower (below): 84-134 s measured for a parked block, from low to full contrast.
 */
const BACKGROUND_TAU_MS = 15_000;
/**
 * Pixels currently seen as changed adapt this many times slower, so a slowly moving person is not
 * absorbed into the background while still in view.
 */
const FOREGROUND_SLOWDOWN = 4;
/** Time step assumed when timestamps do not advance (a clock step back, a repeated timestamp). */
const DEFAULT_STEP_MS = 500;
/**
 * A changed pixel survives noise filtering only when at least this many pixels of its 3x3 neighbourhood
 * (itself included) changed too: isolated specks and thin compression edges drop out, solid objects stay.
 */
const MIN_CHANGED_NEIGHBOURS = 4;
/**
 * When more than this fraction of the visible picture changes at once it is the light, not a subject:
 * the camera switching to IR, lights turned on, auto-exposure jumping. Reporting that as motion would
 * record a clip on every dusk, so the background is re-seeded from the new picture instead. Frigate does
 * the same with `motion.lightning_threshold` (default 0.8). We re-seed a little earlier because a lighting
 * change leaves areas that were already saturated (lamps, sky) or black unchanged, so less than the whole
 * picture crosses the threshold. A subject filling 60% of the picture still triggers on the frames before.
 */
const GLOBAL_CHANGE_FRACTION = 0.6;

/** How a {@link MotionDetector} is set up; the sizes are those of the analysis frames it will receive. */
export interface MotionDetectorOptions {
  width: number;
  height: number;
  /** Where to look for motion; empty = the whole frame. */
  zones: readonly Polygon[];
  /**
   * What happens there can never count as motion: left out of the watched area, and black in the grey
   * image before it is downscaled. On the hub each image has the masks painted once: the ingest's ffmpeg
   * paints their boxes into the grey image (AnalysisFrame.motionGrey), the pipeline the polygons into the
   * RGB frame. A frame without a grey image may come from anywhere (a test, a benchmark), so the detector
   * paints the polygons into a copy of it before making the grey image itself.
   */
  privacyMasks: readonly Polygon[];
  /** 0 = only large, strong changes; 1 = the faintest. */
  sensitivity: number;
  /** Smallest changed fraction of the watched area that counts as motion. */
  minArea: number;
}

/** The outcome for one frame. */
export interface MotionResult {
  /** Changed fraction (0..1) of the watched area, after noise filtering. */
  score: number;
  /** `score >= minArea`, with at least one changed pixel. */
  motion: boolean;
  /**
   * Where it changed, in the analysis frame's pixels: the connected areas of changed pixels (after the
   * noise filter, inside the watched area), near ones merged, tiny ones dropped, biggest first (see
   * motion-regions.ts). Empty when `motion` is false.
   */
  regions: Box[];
}

/**
 * The grey image the detector compares, for analysis frames of `width × height`: its size (160 px wide,
 * the height by aspect) and the Gaussian blur applied after downscaling (sigma in small-image pixels; 0 =
 * none). The ingest asks ffmpeg for exactly this as a second output of the same decode
 * (AnalysisFrame.motionGrey), so the detector does not have to make it from the RGB frame.
 */
export interface MotionGreySpec {
  width: number;
  height: number;
  blurSigma: number;
}

export function motionGreySpec(width: number, height: number): MotionGreySpec {
  const smallWidth = Math.min(width, ANALYSIS_WIDTH);
  return {
    width: smallWidth,
    height: Math.max(1, Math.round((height * smallWidth) / width)),
    blurSigma: smallWidth >= MIN_BLURRED_WIDTH ? BLUR_SIGMA : 0,
  };
}

function fail(message: string): never {
  throw new CamveilError('CAMVEIL_E_INTERNAL', message, { where: 'motion' });
}

/** The per-pixel grey-level threshold for a sensitivity in 0..1. */
export function thresholdForSensitivity(sensitivity: number): number {
  return THRESHOLD_AT_SENSITIVITY_0 + (THRESHOLD_AT_SENSITIVITY_1 - THRESHOLD_AT_SENSITIVITY_0) * sensitivity;
}

/**
 * Detects motion in a camera's analysis frames. One instance per camera; frames must arrive in order.
 * Calls to {@link MotionDetector.update} may overlap: they are processed one after another.
 */
export class MotionDetector {
  readonly #width: number;
  readonly #height: number;
  readonly #small: MotionGreySpec;
  readonly #minArea: number;
  readonly #threshold: number;
  /** Byte ranges of the full-size frame that the privacy masks cover. */
  readonly #maskRuns: Uint32Array;
  /** 1 where motion counts, at the small size. */
  readonly #watch: Uint8Array;
  readonly #watchCount: number;
  /** Pixels outside every privacy mask at the small size: the picture a lighting change is judged on. */
  readonly #visibleCount: number;
  readonly #changed: Uint8Array;
  /** 1 where a changed pixel survived the noise filter inside the watched area: what regions are made of. */
  readonly #moving: Uint8Array;
  #background: Float32Array | undefined;
  #lastAt = 0;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: MotionDetectorOptions) {
    const { width, height, sensitivity, minArea } = options;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) fail(`bad frame size ${width}x${height}`);
    if (!(sensitivity >= 0 && sensitivity <= 1)) fail(`sensitivity ${sensitivity} is outside 0..1`);
    if (!(minArea >= 0 && minArea <= 1)) fail(`minArea ${minArea} is outside 0..1`);
    this.#width = width;
    this.#height = height;
    this.#small = motionGreySpec(width, height);
    const { width: smallWidth, height: smallHeight } = this.#small;
    this.#minArea = minArea;
    this.#threshold = thresholdForSensitivity(sensitivity);
    this.#maskRuns = privacyMaskRuns(options.privacyMasks, width, height);
    this.#watch = watchMask(options, smallWidth, smallHeight);
    this.#watchCount = this.#watch.reduce((sum, v) => sum + v, 0);
    const masked = rasterisePolygons(options.privacyMasks, smallWidth, smallHeight);
    this.#visibleCount = masked.length - masked.reduce((sum, v) => sum + v, 0);
    this.#changed = new Uint8Array(smallWidth * smallHeight);
    this.#moving = new Uint8Array(smallWidth * smallHeight);
  }

  /** The grey image this detector compares: what the ingest asks ffmpeg for (AnalysisFrame.motionGrey). */
  get greySpec(): MotionGreySpec {
    return { ...this.#small };
  }

  /**
   * Compares `frame` with the background and updates it. The first frame, and a frame where most of the
   * picture changed at once (a lighting change), only seed the background: they report score 0, no motion.
   * Throws CAMVEIL_E_INTERNAL when the frame's size is not the one the detector was built for.
   */
  update(frame: AnalysisFrame): Promise<MotionResult> {
    const result = this.#queue.then(() => this.#process(frame));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Forgets the background: the next frame seeds it again (e.g. after the stream was lost). */
  reset(): void {
    this.#background = undefined;
  }

  async #process(frame: AnalysisFrame): Promise<MotionResult> {
    if (frame.width !== this.#width || frame.height !== this.#height || frame.data.length !== this.#width * this.#height * 3) {
      fail(`frame is ${frame.width}x${frame.height} (${frame.data.length} bytes), expected ${this.#width}x${this.#height} RGB24`);
    }
    const at = frame.elapsedMs ?? frame.at;
    if (frame.motionGrey !== undefined) return this.#compare(this.#checkedGrey(frame.motionGrey), at);
    return this.#compare(await this.#downscale(frame.data), at);
  }

  /** The ingest's ready-made grey image, when it is the size this detector compares. */
  #checkedGrey(grey: GreyImage): Uint8Array {
    const { width, height } = this.#small;
    if (grey.width !== width || grey.height !== height || grey.data.length !== width * height) {
      fail(`motion grey image is ${grey.width}x${grey.height} (${grey.data.length} bytes), expected ${width}x${height} grey`);
    }
    return grey.data;
  }

  /**
   * For a frame without a grey image: privacy masks painted black first (on a copy: the frame may be
   * unmasked and shared), then greyscale, downscale and blur with sharp.
   */
  async #downscale(rgb: Buffer): Promise<Uint8Array> {
    let input = rgb;
    if (this.#maskRuns.length > 0) {
      input = Buffer.from(rgb);
      paintRuns(input, this.#maskRuns);
    }
    const { width, height, blurSigma } = this.#small;
    let pipeline = sharp(input, { raw: { width: this.#width, height: this.#height, channels: 3 } })
      .greyscale()
      .resize(width, height, { fit: 'fill' });
    if (blurSigma > 0) pipeline = pipeline.blur(blurSigma);
    return pipeline.raw().toBuffer();
  }

  /** The pure part: difference, threshold, noise filter, count, background update. */
  #compare(grey: Uint8Array, at: number): MotionResult {
    const background = this.#background;
    const step = at - this.#lastAt > 0 ? at - this.#lastAt : DEFAULT_STEP_MS;
    this.#lastAt = at;
    if (background === undefined) {
      this.#background = Float32Array.from(grey);
      return { score: 0, motion: false, regions: [] };
    }
    const [w, h, changed, watch, threshold, moving] = [this.#small.width, this.#small.height, this.#changed, this.#watch, this.#threshold, this.#moving];
    const n = w * h;
    let changedCount = 0;
    for (let k = 0; k < n; k++) {
      const c = Math.abs(grey[k]! - background[k]!) > threshold ? 1 : 0;
      changed[k] = c;
      changedCount += c;
    }
    // Masked pixels are black in both images and never change, so changedCount only covers visible pixels.
    if (this.#visibleCount > 0 && changedCount > GLOBAL_CHANGE_FRACTION * this.#visibleCount) {
      background.set(grey);
      return { score: 0, motion: false, regions: [] };
    }
    moving.fill(0);
    let count = 0;
    for (let y = 0; y < h; y++) {
      const y0 = y > 0 ? y - 1 : 0;
      const y1 = y < h - 1 ? y + 1 : h - 1;
      for (let x = 0; x < w; x++) {
        const k = y * w + x;
        if (changed[k] === 0 || watch[k] === 0) continue;
        const x0 = x > 0 ? x - 1 : 0;
        const x1 = x < w - 1 ? x + 1 : w - 1;
        let neighbours = 0;
        for (let yy = y0; yy <= y1; yy++) {
          for (let xx = x0, kk = yy * w + x0; xx <= x1; xx++, kk++) neighbours += changed[kk]!;
        }
        if (neighbours >= MIN_CHANGED_NEIGHBOURS) {
          moving[k] = 1;
          count++;
        }
      }
    }
    const alpha = 1 - Math.exp(-step / BACKGROUND_TAU_MS);
    const foregroundAlpha = alpha / FOREGROUND_SLOWDOWN;
    for (let k = 0; k < n; k++) {
      const b = background[k]!;
      background[k] = b + (changed[k] === 1 ? foregroundAlpha : alpha) * (grey[k]! - b);
    }
    const score = this.#watchCount === 0 ? 0 : count / this.#watchCount;
    const motion = count > 0 && score >= this.#minArea;
    return { score, motion, regions: motion ? motionRegions(moving, w, h, this.#width, this.#height) : [] };
  }
}
