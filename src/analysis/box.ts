/**
 * An axis-aligned rectangle in a frame's (or image's) pixels: the one box shape motion regions, object
 * detections, tracks and face crops share. `x`, `y` are the top-left corner.
 */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function boxArea(b: Box): number {
  return Math.max(0, b.width) * Math.max(0, b.height);
}

/** The overlap of two boxes, or undefined when they do not overlap. */
export function intersection(a: Box, b: Box): Box | undefined {
  const x = Math.max(a.x, b.x);
  const y = Math.max(a.y, b.y);
  const right = Math.min(a.x + a.width, b.x + b.width);
  const bottom = Math.min(a.y + a.height, b.y + b.height);
  if (right <= x || bottom <= y) return undefined;
  return { x, y, width: right - x, height: bottom - y };
}

/** Intersection over union, 0..1. */
export function iou(a: Box, b: Box): number {
  const overlap = intersection(a, b);
  if (overlap === undefined) return 0;
  const shared = boxArea(overlap);
  return shared / (boxArea(a) + boxArea(b) - shared);
}

/** The smallest box holding both. */
export function union(a: Box, b: Box): Box {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}

/** The box cut to a `width`×`height` frame (possibly empty: width or height 0). */
export function clampBox(b: Box, width: number, height: number): Box {
  const x = Math.min(Math.max(0, b.x), width);
  const y = Math.min(Math.max(0, b.y), height);
  return { x, y, width: Math.max(0, Math.min(width, b.x + b.width) - x), height: Math.max(0, Math.min(height, b.y + b.height) - y) };
}

/** The box's centre point. */
export function centre(b: Box): { x: number; y: number } {
  return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
}
