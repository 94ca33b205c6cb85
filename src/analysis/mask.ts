import type { Polygon } from '../config/schema.js';

/**
 * Turning the config's normalised polygons (motion zones, privacy masks) into per-pixel masks, and painting
 * privacy masks over RGB24 frames.
 *
 * Geometry: a polygon point `[x, y]` maps to pixel coordinates `(x * width, y * height)`; pixel `(i, j)`
 * covers `[i, i+1) x [j, j+1)` and belongs to a polygon when its centre `(i + 0.5, j + 0.5)` is inside
 * it. Each polygon uses the even-odd rule (a self-intersecting polygon has holes where it overlaps
 * itself); several polygons are unioned, so overlapping masks never cancel each other out.
 */

/**
 * Fills `out` (row-major, `width * height`) with 1 wherever a pixel centre lies inside `polygon`, by
 * scanline: for each row, the x positions where the polygon's edges cross the row's centre line, sorted,
 * delimit inside spans in pairs. Edges are half-open in y so a vertex on the centre line counts once.
 */
function fillPolygon(polygon: Polygon, width: number, height: number, out: Uint8Array): void {
  const n = polygon.length;
  if (n < 3) return;
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  let minY = Infinity;
  let maxY = -Infinity;
  for (let k = 0; k < n; k++) {
    const p = polygon[k];
    if (p === undefined) return;
    xs[k] = p[0] * width;
    ys[k] = p[1] * height;
    minY = Math.min(minY, ys[k]!);
    maxY = Math.max(maxY, ys[k]!);
  }
  const firstRow = Math.max(0, Math.ceil(minY - 0.5));
  const lastRow = Math.min(height - 1, Math.ceil(maxY - 0.5) - 1);
  const crossings: number[] = [];
  for (let j = firstRow; j <= lastRow; j++) {
    const yc = j + 0.5;
    crossings.length = 0;
    for (let a = 0, b = n - 1; a < n; b = a++) {
      const ya = ys[a]!;
      const yb = ys[b]!;
      if (ya <= yc === yb <= yc) continue;
      const xa = xs[a]!;
      const xb = xs[b]!;
      const x = xa + ((yc - ya) * (xb - xa)) / (yb - ya);
      // Clamp to the edge's own x range: rounding must never put a crossing outside the polygon's box.
      crossings.push(Math.min(Math.max(x, Math.min(xa, xb)), Math.max(xa, xb)));
    }
    crossings.sort((p, q) => p - q);
    const row = j * width;
    for (let c = 0; c + 1 < crossings.length; c += 2) {
      // Pixels whose centre i + 0.5 lies in [left, right).
      const from = Math.max(0, Math.ceil(crossings[c]! - 0.5));
      const to = Math.min(width, Math.ceil(crossings[c + 1]! - 0.5));
      if (to > from) out.fill(1, row + from, row + to);
    }
  }
}

/**
 * Rasterises `polygons` (normalised coordinates) onto a `width` x `height` grid: 1 where a pixel centre is
 * inside any polygon (even-odd rule per polygon, union across polygons), 0 elsewhere. Pure.
 */
export function rasterisePolygons(polygons: readonly Polygon[], width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  for (const polygon of polygons) fillPolygon(polygon, width, height, out);
  return out;
}

/**
 * Where motion is looked for: 1 inside any zone (everywhere when there are no zones) and outside every
 * privacy mask, 0 elsewhere. Pure.
 */
export function watchMask(
  opts: { zones: readonly Polygon[]; privacyMasks: readonly Polygon[] },
  width: number,
  height: number,
): Uint8Array {
  const watch = opts.zones.length === 0 ? new Uint8Array(width * height).fill(1) : rasterisePolygons(opts.zones, width, height);
  const masked = rasterisePolygons(opts.privacyMasks, width, height);
  for (let k = 0; k < watch.length; k++) watch[k]! &= masked[k]! ^ 1;
  return watch;
}

/**
 * The masked pixels of a `width` x `height` RGB24 frame as byte ranges `[start, end)`, flattened into pairs.
 * Computing the runs once lets a caller that paints every frame (the motion detector) skip rasterising.
 */
export function privacyMaskRuns(masks: readonly Polygon[], width: number, height: number): Uint32Array {
  const raster = rasterisePolygons(masks, width, height);
  const runs: number[] = [];
  let k = 0;
  while (k < raster.length) {
    if (raster[k] === 0) {
      k++;
      continue;
    }
    const start = k;
    while (k < raster.length && raster[k] === 1) k++;
    runs.push(start * 3, k * 3);
  }
  return Uint32Array.from(runs);
}

/** Fills the byte ranges from {@link privacyMaskRuns} with 0 (black) in `rgb`, in place. */
export function paintRuns(rgb: Buffer, runs: Uint32Array): void {
  for (let r = 0; r + 1 < runs.length; r += 2) rgb.fill(0, runs[r], runs[r + 1]);
}

/**
 * Returns a copy of the RGB24 frame `rgb` (`width * height * 3` bytes) with every privacy mask filled
 * black. The input is never modified: the same decoded frame may be shared with other consumers. Used
 * before motion analysis and on every snapshot, so masked areas neither trigger nor leave the hub.
 */
export function paintPrivacyMasks(rgb: Buffer, width: number, height: number, masks: readonly Polygon[]): Buffer {
  const copy = Buffer.from(rgb);
  if (masks.length > 0) paintRuns(copy, privacyMaskRuns(masks, width, height));
  return copy;
}
