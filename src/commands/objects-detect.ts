import sharp from 'sharp';
import { readImageFile, type RgbImage } from '../analysis/faces/image-input.js';
import { planCrops } from '../analysis/objects/crop-planner.js';
import { DEFAULT_MIN_SCORE, DEFAULT_TRACK, labelOf, resolveTrack } from '../analysis/objects/object-classes.js';
import { ObjectWorkerClient, type RawDetection } from '../analysis/objects/object-worker-client.js';
import { CamveilError, exitCodeFor } from '../errors.js';
import type { CommandIO } from './io.js';

/**
 * Images larger than this on their longer side are scaled down (sharp, before the net sees them): with no
 * motion regions the net looks at the whole image in one pass at most 384 px wide anyway, and a 48-megapixel
 * photo would otherwise be a 600 MB tensor. Boxes are still reported in the image's own pixels.
 */
export const MAX_ANALYSIS_SIDE = 1280;

export interface ObjectsDetectOptions {
  json?: boolean;
  /** The operating threshold (0..1); default DEFAULT_MIN_SCORE, as on the hub. */
  minScore?: number;
  /** A loaded client to use (tests); otherwise one is loaded for the call and closed after. */
  client?: ObjectWorkerClient;
}

/** One reported object, in the image's pixels. */
export interface DetectedObject {
  label: string;
  class: string;
  score: number;
  box: { x: number; y: number; width: number; height: number };
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

/** The image as the hub would analyse it: no larger than MAX_ANALYSIS_SIDE, with the factor back to its pixels. */
async function analysisFrame(image: RgbImage): Promise<{ frame: RgbImage; scale: number }> {
  const longer = Math.max(image.width, image.height);
  if (longer <= MAX_ANALYSIS_SIDE) return { frame: image, scale: 1 };
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize({ width: MAX_ANALYSIS_SIDE, height: MAX_ANALYSIS_SIDE, fit: 'inside' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { frame: { width: info.width, height: info.height, data, channels: 3 }, scale: image.width / info.width };
}

/**
 * The hub's path on one still image: crops planned with no motion regions (one whole-image pass), the
 * net's detections, then the tracked classes (every group: DEFAULT_TRACK) at or above `minScore`, best first.
 */
export async function detectObjects(client: ObjectWorkerClient, image: RgbImage, minScore: number): Promise<DetectedObject[]> {
  const { frame, scale } = await analysisFrame(image);
  const { detections } = await client.detect(frame, planCrops([], frame));
  const tracked = resolveTrack(DEFAULT_TRACK);
  return detections
    .filter((d: RawDetection) => d.score >= minScore && tracked.has(d.cocoClass))
    .sort((a, b) => b.score - a.score)
    .map((d) => ({
      label: labelOf(d.cocoClass)!,
      class: d.cocoClass,
      score: round(d.score, 3),
      box: { x: round(d.box.x * scale), y: round(d.box.y * scale), width: round(d.box.width * scale), height: round(d.box.height * scale) },
    }));
}

function objectLine(o: DetectedObject): string {
  const { x, y, width, height } = o.box;
  return `  ${o.label} (${o.class}) score ${o.score.toFixed(2)} at ${Math.round(x)},${Math.round(y)} size ${Math.round(width)}x${Math.round(height)}`;
}

/**
 * `camveil objects detect IMAGE… [--json] [--min-score S]`: the people, vehicles and animals in each image,
 * best first, by the hub's own path (crop planner, net, operating threshold). The model loads once for all
 * the images. With `--json`, one line per image: `{image, width, height, objects}`.
 *
 * @returns 0; 2 for bad usage (`--min-score` outside 0..1) or when an image cannot be decoded (each one is
 * named; the others are still analysed); 1 for other failures (model files, backend).
 */
export async function runObjectsDetect(images: readonly string[], opts: ObjectsDetectOptions, io: CommandIO): Promise<number> {
  const minScore = opts.minScore ?? DEFAULT_MIN_SCORE;
  if (!Number.isFinite(minScore) || minScore < 0 || minScore > 1) {
    io.stderr(`CAMVEIL_E_USAGE: --min-score must be a number from 0 to 1, got ${String(opts.minScore)}`);
    return 2;
  }
  if (images.length === 0) {
    io.stderr('CAMVEIL_E_USAGE: name at least one image');
    return 2;
  }
  const client = opts.client ?? new ObjectWorkerClient();
  let exitCode = 0;
  try {
    if (opts.client === undefined) await client.load();
    for (const file of images) {
      let image: RgbImage;
      try {
        image = await readImageFile(file);
      } catch (error) {
        if (!(error instanceof CamveilError) || error.code !== 'CAMVEIL_E_IMAGE_INVALID') throw error;
        io.stderr(`${error.code}: ${error.message}`);
        exitCode = 2;
        continue;
      }
      const objects = await detectObjects(client, image, minScore);
      if (opts.json === true) {
        io.stdout(JSON.stringify({ image: file, width: image.width, height: image.height, objects }));
      } else {
        io.stdout(`${file} (${image.width}x${image.height}): ${objects.length} object(s) at min score ${minScore}`);
        objects.forEach((o) => io.stdout(objectLine(o)));
      }
    }
    return exitCode;
  } catch (error) {
    if (!(error instanceof CamveilError)) throw error;
    io.stderr(`${error.code}: ${error.message}`);
    return exitCodeFor(error);
  } finally {
    if (opts.client === undefined) await client.close();
  }
}
