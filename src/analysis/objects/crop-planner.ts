import { clampBox, union, intersection, boxArea, type Box } from '../box.js';

/**
 * Where in a frame the object model looks: square crops around the motion regions, instead of squashing
 * the whole frame into the model's 512×512 input. A person 60 px tall in a 640×360 frame is 48 px after
 * the whole frame is squashed to 512, but about 190 px inside a 160 px crop: small, far objects are found
 * at the size the model was trained on. Every crop costs one model call, so the planner merges what it can
 * and falls back to one full-frame pass when crops would not pay.
 *
 * The steps, each pure:
 * 1. each motion region (cut to the frame) is grown by a margin: a person whose legs moved is wholly inside;
 * 2. grown regions are gathered into clusters: two merge when one square holding both is still no larger
 *    than the model's input (merging then loses no resolution, since upscaling adds no detail, and saves a
 *    model call), or when their squares overlap a lot (the model would look at the same pixels twice);
 * 3. each cluster becomes a square (the model's input is square) with a minimum side, centred on the
 *    cluster, shifted (never cut) to lie inside the frame; a square wider than the frame's shorter side
 *    sticks out of it, centred, and the model host pads the outside black;
 * 4. when motion covers most of the frame, or there would be more crops than allowed, or nothing moved (a
 *    still photo, the CLI), the result is one full-frame pass instead.
 *
 * Crops are in frame pixels, integer, and may reach outside the frame (the full-frame pass always does
 * unless the frame is square): the model host's cropAndResize pads what lies outside with black.
 */

export interface CropPlanOptions {
  /** Each region grows by this fraction of its larger side on every side (default 0.25). */
  margin?: number;
  /** …and by at least this many pixels (default 8). */
  minMarginPx?: number;
  /** A crop's side is at least this many pixels… (default 160) */
  minSidePx?: number;
  /** …and at least this fraction of the frame's shorter side (default 1/3); never more than the shorter side. */
  minSideFraction?: number;
  /** Clusters merge while the square holding them is no larger than this (default 512, the model's input side). */
  mergeSide?: number;
  /** Placed squares whose overlap is at least this fraction of the smaller one merge whatever their size (default 0.5). */
  mergeOverlap?: number;
  /** More crops than this and the frame gets one full-frame pass instead (default 2). */
  maxCrops?: number;
  /** When the motion regions cover more than this fraction of the frame, one full-frame pass (default 0.5). */
  fullFrameCoverage?: number;
}

/**
 * The defaults. `maxCrops` is 2: each crop costs one model call, so the planner's worst case is twice the
 * bare model's time on a frame where two things moved far apart; one thing moving (the usual case) is one
 * call. `mergeSide` is the model's input side, 512.
 */
export const CROP_DEFAULTS: Readonly<Required<CropPlanOptions>> = Object.freeze({
  margin: 0.25,
  minMarginPx: 8,
  minSidePx: 160,
  minSideFraction: 1 / 3,
  mergeSide: 512,
  mergeOverlap: 0.5,
  maxCrops: 2,
  fullFrameCoverage: 0.5,
});

interface FrameSize {
  width: number;
  height: number;
}

/** The full-frame pass: a square of the frame's longer side, centred on the frame (padded where it sticks out). */
export function fullFrameCrop(frame: FrameSize): Box {
  const side = Math.max(frame.width, frame.height);
  return { x: Math.floor((frame.width - side) / 2), y: Math.floor((frame.height - side) / 2), width: side, height: side };
}

/** The squares the object model should look at for a frame with these motion regions. Pure. */
export function planCrops(regions: readonly Box[], frame: FrameSize, options: CropPlanOptions = {}): Box[] {
  const o = { ...CROP_DEFAULTS, ...options };
  const full = [fullFrameCrop(frame)];
  if (frame.width <= 0 || frame.height <= 0) return full;
  const inside = regions.map((r) => clampBox(r, frame.width, frame.height)).filter((r) => r.width > 0 && r.height > 0);
  if (inside.length === 0) return full;
  if (coverage(inside, frame) > o.fullFrameCoverage) return full;

  const shorter = Math.min(frame.width, frame.height);
  const minSide = Math.min(shorter, Math.ceil(Math.max(o.minSidePx, shorter * o.minSideFraction)));
  const square = (b: Box): Box => placeSquare(b, minSide, frame);

  let clusters = inside.map((r) => grow(r, o.margin, o.minMarginPx, frame));
  for (let merged = true; merged && clusters.length > 1; ) {
    merged = false;
    search: for (let i = 0; i < clusters.length; i++) {
      for (let j = i + 1; j < clusters.length; j++) {
        const a = clusters[i]!;
        const b = clusters[j]!;
        const both = union(a, b);
        if (square(both).width <= Math.max(o.mergeSide, minSide) || overlapOfSmaller(square(a), square(b)) >= o.mergeOverlap) {
          clusters = [...clusters.filter((_, k) => k !== i && k !== j), both];
          merged = true;
          break search;
        }
      }
    }
  }
  if (clusters.length > o.maxCrops) return full;
  return clusters.map(square).sort((a, b) => a.y - b.y || a.x - b.x);
}

/** The region grown by `margin` × its larger side (at least `minPx`) on every side, cut to the frame (integers). */
function grow(r: Box, margin: number, minPx: number, frame: FrameSize): Box {
  const by = Math.max(minPx, margin * Math.max(r.width, r.height));
  const x = Math.max(0, Math.floor(r.x - by));
  const y = Math.max(0, Math.floor(r.y - by));
  return {
    x,
    y,
    width: Math.min(frame.width, Math.ceil(r.x + r.width + by)) - x,
    height: Math.min(frame.height, Math.ceil(r.y + r.height + by)) - y,
  };
}

/**
 * The square holding `b` (integer, inside the frame): side the larger of `b`'s sides and `minSide`, at most
 * the frame's longer side; centred on `b`, then shifted into the frame along each axis the square fits in,
 * and centred on the frame along an axis it does not fit in.
 */
function placeSquare(b: Box, minSide: number, frame: FrameSize): Box {
  const side = Math.min(Math.max(frame.width, frame.height), Math.max(minSide, Math.ceil(b.width), Math.ceil(b.height)));
  const place = (start: number, length: number, frameLength: number): number => {
    if (side > frameLength) return Math.floor((frameLength - side) / 2);
    return Math.min(Math.max(0, Math.floor(start + length / 2 - side / 2)), frameLength - side);
  };
  return { x: place(b.x, b.width, frame.width), y: place(b.y, b.height, frame.height), width: side, height: side };
}

function overlapOfSmaller(a: Box, b: Box): number {
  const shared = intersection(a, b);
  if (shared === undefined) return 0;
  return boxArea(shared) / Math.min(boxArea(a), boxArea(b));
}

/**
 * The fraction of the frame the boxes cover together (overlaps counted once), measured on a grid of at
 * most 160 cells along the frame's longer side: a cell counts when its centre is inside a box.
 */
export function coverage(boxes: readonly Box[], frame: FrameSize): number {
  const cell = Math.max(1, Math.ceil(Math.max(frame.width, frame.height) / 160));
  const cols = Math.ceil(frame.width / cell);
  const rows = Math.ceil(frame.height / cell);
  const covered = new Uint8Array(cols * rows);
  for (const b of boxes) {
    const c0 = Math.max(0, Math.ceil((b.x - cell / 2) / cell));
    const c1 = Math.min(cols - 1, Math.ceil((b.x + b.width - cell / 2) / cell) - 1);
    const r0 = Math.max(0, Math.ceil((b.y - cell / 2) / cell));
    const r1 = Math.min(rows - 1, Math.ceil((b.y + b.height - cell / 2) / cell) - 1);
    for (let r = r0; r <= r1; r++) covered.fill(1, r * cols + c0, r * cols + c1 + 1);
  }
  let count = 0;
  for (const v of covered) count += v;
  return count / (cols * rows);
}
