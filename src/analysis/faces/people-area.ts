import { clampBox, union, type Box } from '../box.js';

/**
 * How much a person's box is grown on each side before faces are looked for in it, as a fraction of its
 * size: detectors often cut a person's box at the forehead or hair, and a face the tiny detector sees
 * whole is one it can describe. Upwards more than sideways: the head is what a box most often misses.
 */
const GROW_UP = 0.15;
const GROW_SIDE = 0.1;

/**
 * Where the face stage looks when the objects analyser found people: the smallest box holding every
 * person's box, grown to hold the head, cut to the frame, on whole pixels. One area rather than one per
 * person: people in a frame are usually close together, and one model call costs less than several.
 * Undefined when there are no people (or their boxes are empty).
 */
export function peopleArea(people: readonly Box[], frame: { width: number; height: number }): Box | undefined {
  let area: Box | undefined;
  for (const p of people) {
    const grown = { x: p.x - p.width * GROW_SIDE, y: p.y - p.height * GROW_UP, width: p.width * (1 + 2 * GROW_SIDE), height: p.height * (1 + GROW_UP) };
    area = area === undefined ? grown : union(area, grown);
  }
  if (area === undefined) return undefined;
  const x = Math.floor(Math.max(0, area.x));
  const y = Math.floor(Math.max(0, area.y));
  const clamped = clampBox({ x, y, width: Math.ceil(area.x + area.width) - x, height: Math.ceil(area.y + area.height) - y }, frame.width, frame.height);
  return clamped.width >= 1 && clamped.height >= 1 ? clamped : undefined;
}

/** The RGB24 pixels of `area` (whole pixels, inside the frame), copied row by row into a new buffer. */
export function cropRgb(frame: { width: number; data: Uint8Array }, area: Box): { width: number; height: number; data: Uint8Array } {
  const rowBytes = area.width * 3;
  const data = new Uint8Array(rowBytes * area.height);
  for (let row = 0; row < area.height; row++) {
    const start = ((area.y + row) * frame.width + area.x) * 3;
    data.set(frame.data.subarray(start, start + rowBytes), row * rowBytes);
  }
  return { width: area.width, height: area.height, data };
}
