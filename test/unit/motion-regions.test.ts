import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { motionRegions } from '../../src/analysis/motion-regions.js';

/** A `width × height` grid with 1s in the given inclusive rectangles [x0, y0, x1, y1]. */
function grid(width: number, height: number, rects: ReadonlyArray<[number, number, number, number]>): Uint8Array {
  const g = new Uint8Array(width * height);
  for (const [x0, y0, x1, y1] of rects) for (let y = y0; y <= y1; y++) g.fill(1, y * width + x0, y * width + x1 + 1);
  return g;
}

describe('motionRegions', () => {
  it('gives nothing for an empty grid', () => {
    expect(motionRegions(new Uint8Array(160 * 90), 160, 90, 640, 360)).toEqual([]);
  });

  it('scales one area to the frame, outward (4 frame pixels per grid pixel at 160 → 640)', () => {
    expect(motionRegions(grid(160, 90, [[10, 20, 14, 29]]), 160, 90, 640, 360)).toEqual([{ x: 40, y: 80, width: 20, height: 40 }]);
  });

  it('keeps areas far apart separate, biggest first', () => {
    const regions = motionRegions(grid(160, 90, [[10, 10, 12, 12], [100, 50, 120, 70]]), 160, 90, 640, 360);
    expect(regions).toEqual([
      { x: 400, y: 200, width: 84, height: 84 },
      { x: 40, y: 40, width: 12, height: 12 },
    ]);
  });

  it('joins diagonal neighbours (8-connected) and merges areas two grid pixels apart, but not three', () => {
    expect(motionRegions(grid(20, 20, [[0, 0, 1, 1], [2, 2, 3, 3]]), 20, 20, 20, 20)).toHaveLength(1);
    expect(motionRegions(grid(20, 20, [[0, 0, 1, 1], [4, 0, 5, 1]]), 20, 20, 20, 20)).toEqual([{ x: 0, y: 0, width: 6, height: 2 }]);
    expect(motionRegions(grid(20, 20, [[0, 0, 1, 1], [5, 0, 6, 1]]), 20, 20, 20, 20)).toHaveLength(2);
  });

  it('drops areas of fewer than 4 grid pixels unless merged into a bigger one', () => {
    expect(motionRegions(grid(20, 20, [[0, 0, 2, 0]]), 20, 20, 20, 20)).toEqual([]);
    expect(motionRegions(grid(20, 20, [[0, 0, 1, 1]]), 20, 20, 20, 20)).toHaveLength(1);
    // Two specks of 2 pixels each, one pixel apart: together they are 4.
    expect(motionRegions(grid(20, 20, [[0, 0, 1, 0], [3, 0, 4, 0]]), 20, 20, 20, 20)).toEqual([{ x: 0, y: 0, width: 5, height: 1 }]);
  });

  it('property: every changed pixel of a kept region lies inside one of the boxes, and boxes stay inside the frame', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(31), fc.nat(17), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 })), { maxLength: 6 }), (rects) => {
        const [w, h, fw, fh] = [32, 18, 640, 360];
        const g = grid(w, h, rects.map(([x, y, rw, rh]) => [x, y, Math.min(w - 1, x + rw - 1), Math.min(h - 1, y + rh - 1)]));
        const boxes = motionRegions(g, w, h, fw, fh);
        for (const b of boxes) {
          expect(b.x).toBeGreaterThanOrEqual(0);
          expect(b.y).toBeGreaterThanOrEqual(0);
          expect(b.x + b.width).toBeLessThanOrEqual(fw);
          expect(b.y + b.height).toBeLessThanOrEqual(fh);
        }
        for (let i = 1; i < boxes.length; i++) expect(boxes[i - 1]!.width * boxes[i - 1]!.height).toBeGreaterThanOrEqual(boxes[i]!.width * boxes[i]!.height);
        // When everything is one big blob (at least 4 pixels), it is covered.
        const total = g.reduce((s, v) => s + v, 0);
        if (boxes.length === 0) return;
        let covered = 0;
        for (let k = 0; k < g.length; k++) {
          if (g[k] === 0) continue;
          const [cx, cy] = [((k % w) + 0.5) * (fw / w), (Math.floor(k / w) + 0.5) * (fh / h)];
          if (boxes.some((b) => cx >= b.x && cx < b.x + b.width && cy >= b.y && cy < b.y + b.height)) covered++;
        }
        expect(covered).toBeLessThanOrEqual(total);
        expect(covered).toBeGreaterThan(0);
      }),
    );
  });
});
