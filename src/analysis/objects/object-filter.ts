import type { ObjectsConfig, Polygon } from '../../config/schema.js';
import { boxArea, clampBox, type Box } from '../box.js';
import type { DetectedObject } from '../frame-analyser.js';
import { labelOf, resolveTrack } from './object-classes.js';

/**
 * A camera's `objects` settings applied to the model's detections: which classes it tracks, the score
 * threshold, the smallest box, and the zones per label or class. Pure.
 */

/** One detection as the model reports it, in the analysis frame's pixels. */
export interface RawObject {
  cocoClass: string;
  score: number;
  box: Box;
}

/**
 * The filter for one frame size: a detection becomes a DetectedObject (its box cut to the frame) when its
 * COCO class is in `track` (and so has a group label), its score is at least `minScore`, its box (cut to
 * the frame) covers at least `minArea` of the frame, and its zones hold it. The zones of a detection are
 * those of its COCO class when `zones` names the class, else those of its label, else there are none and it
 * counts anywhere. A zone holds it when the pixel at the bottom centre of its box (where a person or a car
 * stands) is inside one of the polygons, by the same rule as the motion zones and masks (mask.ts): the
 * pixel's centre, even-odd per polygon.
 */
export function objectFilter(
  objects: Pick<ObjectsConfig, 'track' | 'minScore' | 'minArea' | 'zones'>,
  frame: { width: number; height: number },
): (d: RawObject) => DetectedObject | undefined {
  const tracked = resolveTrack(objects.track);
  const frameArea = frame.width * frame.height;
  return (d) => {
    if (!tracked.has(d.cocoClass) || !(d.score >= objects.minScore)) return undefined;
    const label = labelOf(d.cocoClass);
    if (label === undefined) return undefined;
    const box = clampBox(d.box, frame.width, frame.height);
    if (box.width <= 0 || box.height <= 0 || boxArea(box) < objects.minArea * frameArea) return undefined;
    const zones = objects.zones[d.cocoClass] ?? objects.zones[label];
    if (zones !== undefined && !zones.some((zone) => standsIn(box, zone, frame))) return undefined;
    return { label, cocoClass: d.cocoClass, score: d.score, box };
  };
}

/**
 * Whether the bottom-centre pixel of `box` (inside the frame, non-empty) lies in `polygon` (normalised):
 * the pixel's centre, even-odd, with edges half-open in y as in mask.ts's scanline fill.
 */
export function standsIn(box: Box, polygon: Polygon, frame: { width: number; height: number }): boolean {
  const column = Math.min(frame.width - 1, Math.max(0, Math.floor(box.x + box.width / 2)));
  const row = Math.min(frame.height - 1, Math.max(0, Math.ceil(box.y + box.height) - 1));
  return pixelInPolygon(column, row, polygon, frame);
}

/** Pixel `(column, row)`'s centre inside `polygon` (normalised), as rasterisePolygons (mask.ts) would paint it. */
export function pixelInPolygon(column: number, row: number, polygon: Polygon, frame: { width: number; height: number }): boolean {
  const xc = column + 0.5;
  const yc = row + 0.5;
  let inside = false;
  for (let a = 0, b = polygon.length - 1; a < polygon.length; b = a++) {
    const pa = polygon[a]!;
    const pb = polygon[b]!;
    const xa = pa[0] * frame.width;
    const ya = pa[1] * frame.height;
    const xb = pb[0] * frame.width;
    const yb = pb[1] * frame.height;
    if (ya <= yc === yb <= yc) continue;
    const x = xa + ((yc - ya) * (xb - xa)) / (yb - ya);
    // A crossing at or left of the centre: the scanline fill paints pixels whose centre is in [left, right).
    if (Math.min(Math.max(x, Math.min(xa, xb)), Math.max(xa, xb)) <= xc) inside = !inside;
  }
  return inside;
}
