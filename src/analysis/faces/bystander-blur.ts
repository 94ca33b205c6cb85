import sharp from 'sharp';
import { CamveilError } from '../../errors.js';
import type { FaceBox } from './face-engine.js';
import { nearestPerson, type EnrolledPerson } from './matcher.js';
import { MATCH_THRESHOLD } from './threshold.js';

/** One face the worker found in a frame: its box and, when it was usable for recognition, the index of its descriptor. */
export interface FoundFace {
  box: FaceBox;
  descriptor?: number;
}

export interface BlurOptions {
  /**
   * Added to each side of a box, as a fraction of the box's width (left, right) and height (top, bottom).
   * SSD boxes stop at the brow and the chin and leave the ears out; hair and ears identify too. Default 0.1
   * (the box grows by 20% in each direction).
   */
  grow?: number;
  /**
   * Cells along the longer side of the (grown) box after pixelation. Default 8: a 60 px face becomes
   * 8 × 8 cells of about 7 px — face recognisers need well over 16 px across a face, and unlike a Gaussian
   * blur, averaging into cells cannot be undone by deconvolution.
   */
  cells?: number;
}

/**
 * The boxes of the faces in a frame that belong to nobody enrolled: faces whose descriptor is not within
 * `threshold` of any template (nearestPerson), and faces that were too small, too blurred or too far off
 * the frame to be described at all — those cannot be shown to be the household, so they count as
 * bystanders. Pure.
 */
export function bystanderBoxes(
  faces: readonly FoundFace[],
  descriptors: readonly Float32Array[],
  people: readonly EnrolledPerson[],
  threshold = MATCH_THRESHOLD,
): FaceBox[] {
  const out: FaceBox[] = [];
  for (const face of faces) {
    const descriptor = face.descriptor === undefined ? undefined : descriptors[face.descriptor];
    if (descriptor === undefined || nearestPerson(descriptor, people, threshold) === undefined) out.push({ ...face.box });
  }
  return out;
}

/** A box grown by `grow` on every side, rounded outwards to whole pixels and clipped to the image; undefined when nothing is left. */
function region(box: FaceBox, grow: number, width: number, height: number): { left: number; top: number; width: number; height: number } | undefined {
  const x0 = Math.max(0, Math.floor(box.x - grow * box.width));
  const y0 = Math.max(0, Math.floor(box.y - grow * box.height));
  const x1 = Math.min(width, Math.ceil(box.x + (1 + grow) * box.width));
  const y1 = Math.min(height, Math.ceil(box.y + (1 + grow) * box.height));
  if (!(x1 > x0 && y1 > y0)) return undefined;
  return { left: x0, top: y0, width: x1 - x0, height: y1 - y0 };
}

/**
 * A copy of an RGB24 image with every box (grown by `grow`) pixelated: the region is extracted, scaled down
 * to `cells` cells on its longer side (area average) and scaled back up with nearest-neighbour, then
 * copied over the region. Pixels outside every grown box are byte-for-byte those of `rgb`, which is not
 * modified. In memory only: sharp works on raw buffers and writes no file. Throws CAMVEIL_E_INTERNAL when
 * the buffer does not hold `width × height × 3` bytes.
 */
export async function blurBoxes(rgb: Buffer, width: number, height: number, boxes: readonly FaceBox[], opts: BlurOptions = {}): Promise<Buffer> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || rgb.length !== width * height * 3) {
    throw new CamveilError('CAMVEIL_E_INTERNAL', `image is ${width}x${height} but holds ${rgb.length} bytes, not RGB24`, { where: 'faces' });
  }
  const grow = opts.grow ?? 0.1;
  const cells = Math.max(1, Math.round(opts.cells ?? 8));
  const out = Buffer.from(rgb);
  for (const box of boxes) {
    const r = region(box, grow, width, height);
    if (r === undefined) continue;
    const scale = cells / Math.max(r.width, r.height);
    const small = { width: Math.max(1, Math.round(r.width * scale)), height: Math.max(1, Math.round(r.height * scale)) };
    // From `out`, not `rgb`: where two grown boxes overlap, the second must not bring back sharp pixels.
    const reduced = await sharp(out, { raw: { width, height, channels: 3 } })
      .extract(r)
      .resize(small.width, small.height, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    const cellsUp = await sharp(reduced, { raw: { ...small, channels: 3 } })
      .resize(r.width, r.height, { fit: 'fill', kernel: 'nearest' })
      .raw()
      .toBuffer();
    const row = r.width * 3;
    for (let y = 0; y < r.height; y++) cellsUp.copy(out, ((r.top + y) * width + r.left) * 3, y * row, (y + 1) * row);
  }
  return out;
}
