import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { paintPrivacyMasks, rasterisePolygons, watchMask } from '../../src/analysis/mask.js';
import type { Polygon } from '../../src/config/schema.js';

const FULL: Polygon = [[0, 0], [1, 0], [1, 1], [0, 1]];

const coordinate = fc.double({ min: 0, max: 1, noNaN: true });
const arbPolygon: fc.Arbitrary<Polygon> = fc.array(fc.tuple(coordinate, coordinate), { minLength: 3, maxLength: 8 });
const arbPolygons = fc.array(arbPolygon, { maxLength: 3 });
const arbSize = fc.record({ width: fc.integer({ min: 1, max: 64 }), height: fc.integer({ min: 1, max: 64 }) });

function count(mask: Uint8Array): number {
  return mask.reduce((sum, v) => sum + v, 0);
}

/** True when pixel (i, j)'s centre lies within the bounding box of some polygon, in pixel coordinates. */
function inSomeBox(polygons: Polygon[], width: number, height: number, i: number, j: number): boolean {
  return polygons.some((p) => {
    const xs = p.map(([x]) => x * width);
    const ys = p.map(([, y]) => y * height);
    const cx = i + 0.5;
    const cy = j + 0.5;
    return cx >= Math.min(...xs) && cx <= Math.max(...xs) && cy >= Math.min(...ys) && cy <= Math.max(...ys);
  });
}

describe('rasterisePolygons', () => {
  it('fills exactly the pixels whose centre is inside an axis-aligned rectangle', () => {
    // x 0.25..0.75 of 8 px = 2..6, y 0.5..1 of 4 px = rows 2..3.
    const mask = rasterisePolygons([[[0.25, 0.5], [0.75, 0.5], [0.75, 1], [0.25, 1]]], 8, 4);
    const rows = Array.from({ length: 4 }, (_, j) => Array.from(mask.subarray(j * 8, (j + 1) * 8)).join(''));
    expect(rows).toEqual(['00000000', '00000000', '00111100', '00111100']);
  });

  it('fills a triangle by pixel centres', () => {
    const mask = rasterisePolygons([[[0, 0], [1, 0], [0, 1]]], 4, 4);
    const rows = Array.from({ length: 4 }, (_, j) => Array.from(mask.subarray(j * 4, (j + 1) * 4)).join(''));
    // Centres on the hypotenuse (e.g. (2.5, 1.5) px) fall on a span's right end, which is exclusive.
    expect(rows).toEqual(['1110', '1100', '1000', '0000']);
  });

  it('unions overlapping polygons instead of cancelling them', () => {
    const a: Polygon = [[0, 0], [0.75, 0], [0.75, 1], [0, 1]];
    const b: Polygon = [[0.25, 0], [1, 0], [1, 1], [0.25, 1]];
    expect(count(rasterisePolygons([a, b], 8, 8))).toBe(64);
  });

  it('property: a full-frame polygon gives all ones at any size', () => {
    fc.assert(
      fc.property(arbSize, ({ width, height }) => {
        expect(count(rasterisePolygons([FULL], width, height))).toBe(width * height);
      }),
    );
  });

  it('property: never marks a pixel whose centre is outside every polygon bounding box', () => {
    fc.assert(
      fc.property(arbPolygons, arbSize, (polygons, { width, height }) => {
        const mask = rasterisePolygons(polygons, width, height);
        for (let j = 0; j < height; j++) {
          for (let i = 0; i < width; i++) {
            if (mask[j * width + i] === 1) expect(inSomeBox(polygons, width, height, i, j)).toBe(true);
          }
        }
      }),
    );
  });

});

describe('watchMask', () => {
  it('watches everything when there are no zones and no masks', () => {
    expect(count(watchMask({ zones: [], privacyMasks: [] }, 16, 9))).toBe(16 * 9);
  });

  it('watches nothing when a privacy mask covers the frame, whatever the zones', () => {
    expect(count(watchMask({ zones: [FULL], privacyMasks: [FULL] }, 16, 9))).toBe(0);
  });

  it('property: watched pixels are inside a zone (or anywhere without zones) and outside every privacy mask', () => {
    fc.assert(
      fc.property(arbPolygons, arbPolygons, arbSize, (zones, privacyMasks, { width, height }) => {
        const watch = watchMask({ zones, privacyMasks }, width, height);
        const masked = rasterisePolygons(privacyMasks, width, height);
        const zoned = zones.length === 0 ? new Uint8Array(width * height).fill(1) : rasterisePolygons(zones, width, height);
        for (let k = 0; k < watch.length; k++) {
          expect(watch[k]).toBe(masked[k] === 0 && zoned[k] === 1 ? 1 : 0);
        }
      }),
    );
  });
});

describe('paintPrivacyMasks', () => {
  it('returns a painted copy and leaves the input untouched', () => {
    const rgb = Buffer.alloc(4 * 2 * 3, 200);
    const painted = paintPrivacyMasks(rgb, 4, 2, [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]);
    expect(rgb.every((v) => v === 200)).toBe(true);
    expect([...painted]).toEqual([
      ...[0, 0, 0, 0, 0, 0, 200, 200, 200, 200, 200, 200],
      ...[0, 0, 0, 0, 0, 0, 200, 200, 200, 200, 200, 200],
    ]);
  });

  it('property: paints black exactly the rasterised pixels, never outside the masks bounding boxes', () => {
    fc.assert(
      fc.property(arbPolygons, arbSize, (masks, { width, height }) => {
        const rgb = Buffer.alloc(width * height * 3, 255);
        const painted = paintPrivacyMasks(rgb, width, height, masks);
        const raster = rasterisePolygons(masks, width, height);
        for (let j = 0; j < height; j++) {
          for (let i = 0; i < width; i++) {
            const k = j * width + i;
            const black = painted[3 * k] === 0 && painted[3 * k + 1] === 0 && painted[3 * k + 2] === 0;
            const untouched = painted[3 * k] === 255 && painted[3 * k + 1] === 255 && painted[3 * k + 2] === 255;
            expect(raster[k] === 1 ? black : untouched).toBe(true);
            if (black) expect(inSomeBox(masks, width, height, i, j)).toBe(true);
          }
        }
      }),
    );
  });
});
