import type { Box } from './box.js';

/**
 * Where in a frame the motion detector saw change: the connected areas of its changed-pixel grid (the
 * small grey image it compares, after its noise filter and inside the watched area), as boxes in the
 * analysis frame's pixels. The objects analyser crops around these instead of squashing the whole frame.
 */

/**
 * Areas whose changed pixels come closer than this (in small-grid pixels, on both axes) are one region:
 * a person seen as a head and legs split by a railing, or a car by its shadow, is one thing to look at.
 * Two grid pixels are 8 frame pixels at 640 px wide.
 */
const MERGE_GAP = 2;
/**
 * A region with fewer changed small-grid pixels than this is dropped: at 160×90, 4 pixels are 16×16 frame
 * pixels at 640×360, less than any object the objects model can recognise. The noise filter already
 * needs 4 changed pixels around each survivor, so this only removes slivers at the edge of the watched area.
 */
const MIN_REGION_PIXELS = 4;

/** A region in small-grid pixels: inclusive bounds and how many changed pixels it holds. */
interface GridRegion {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  pixels: number;
}

/**
 * The connected areas (8-neighbourhood) of the 1s in `changed` (`width × height`, row-major), merged where
 * they come within {@link MERGE_GAP} of each other, without those under {@link MIN_REGION_PIXELS}, scaled to
 * a `frameWidth × frameHeight` frame that the grid covers edge to edge, biggest first. Pure.
 */
export function motionRegions(changed: Uint8Array, width: number, height: number, frameWidth: number, frameHeight: number): Box[] {
  const regions = mergeNear(connectedAreas(changed, width, height)).filter((r) => r.pixels >= MIN_REGION_PIXELS);
  const sx = frameWidth / width;
  const sy = frameHeight / height;
  const boxes = regions.map((r): Box => {
    // Outward: the box covers every frame pixel that any of the region's grid pixels covers.
    const x = Math.floor(r.x0 * sx);
    const y = Math.floor(r.y0 * sy);
    return { x, y, width: Math.min(frameWidth, Math.ceil((r.x1 + 1) * sx)) - x, height: Math.min(frameHeight, Math.ceil((r.y1 + 1) * sy)) - y };
  });
  return boxes.sort((a, b) => b.width * b.height - a.width * a.height || a.y - b.y || a.x - b.x);
}

/** Labels the 8-connected areas of 1s by flood fill (an explicit stack: no recursion depth limit). */
function connectedAreas(changed: Uint8Array, width: number, height: number): GridRegion[] {
  const seen = new Uint8Array(changed.length);
  const stack = new Int32Array(changed.length);
  const regions: GridRegion[] = [];
  for (let start = 0; start < changed.length; start++) {
    if (changed[start] === 0 || seen[start] === 1) continue;
    const region: GridRegion = { x0: width, y0: height, x1: -1, y1: -1, pixels: 0 };
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    while (top > 0) {
      const k = stack[--top]!;
      const x = k % width;
      const y = (k - x) / width;
      region.pixels += 1;
      if (x < region.x0) region.x0 = x;
      if (x > region.x1) region.x1 = x;
      if (y < region.y0) region.y0 = y;
      if (y > region.y1) region.y1 = y;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(height - 1, y + 1); yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(width - 1, x + 1); xx++) {
          const kk = yy * width + xx;
          if (changed[kk] === 1 && seen[kk] === 0) {
            seen[kk] = 1;
            stack[top++] = kk;
          }
        }
      }
    }
    regions.push(region);
  }
  return regions;
}

/** The gap (in grid pixels) between two inclusive ranges; 0 when they touch or overlap. */
function gap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.max(a0, b0) - Math.min(a1, b1) - 1);
}

/** Merges regions whose boxes come within MERGE_GAP on both axes, until no two do. */
function mergeNear(regions: GridRegion[]): GridRegion[] {
  const out = regions.slice();
  let merged = true;
  while (merged) {
    merged = false;
    for (let i = 0; i < out.length && !merged; i++) {
      for (let j = i + 1; j < out.length; j++) {
        const a = out[i]!;
        const b = out[j]!;
        if (gap(a.x0, a.x1, b.x0, b.x1) > MERGE_GAP || gap(a.y0, a.y1, b.y0, b.y1) > MERGE_GAP) continue;
        out[i] = { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1), pixels: a.pixels + b.pixels };
        out.splice(j, 1);
        merged = true;
        break;
      }
    }
  }
  return out;
}
