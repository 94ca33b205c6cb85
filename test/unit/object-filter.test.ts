import { describe, expect, it } from 'vitest';
import { rasterisePolygons } from '../../src/analysis/mask.js';
import { objectFilter, pixelInPolygon, standsIn } from '../../src/analysis/objects/object-filter.js';
import type { ObjectsConfig, Polygon } from '../../src/config/schema.js';

const FRAME = { width: 640, height: 360 };
const settings = (over: Partial<ObjectsConfig> = {}): ObjectsConfig => ({ enabled: true, track: ['person', 'vehicle', 'animal'], minScore: 0.5, minArea: 0.001, zones: {}, ...over });
/** The lower-left quarter of the frame: the drive. */
const drive: Polygon = [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]];
const person = { cocoClass: 'person', score: 0.8, box: { x: 100, y: 200, width: 40, height: 100 } };

function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('objectFilter', () => {
  it('keeps a tracked detection above the thresholds, with its group label', () => {
    expect(objectFilter(settings(), FRAME)(person)).toEqual({ label: 'person', cocoClass: 'person', score: 0.8, box: person.box });
    expect(objectFilter(settings(), FRAME)({ ...person, cocoClass: 'truck' })?.label).toBe('vehicle');
  });

  it('drops classes outside track and outside every group', () => {
    const keep = objectFilter(settings({ track: ['person', 'car'] }), FRAME);
    expect(keep({ ...person, cocoClass: 'car' })?.label).toBe('vehicle');
    expect(keep({ ...person, cocoClass: 'truck' })).toBeUndefined();
    expect(keep({ ...person, cocoClass: 'dog' })).toBeUndefined();
    expect(objectFilter(settings(), FRAME)({ ...person, cocoClass: 'umbrella' })).toBeUndefined();
  });

  it('drops scores under minScore (the threshold itself passes) and NaN', () => {
    const keep = objectFilter(settings({ minScore: 0.5 }), FRAME);
    expect(keep({ ...person, score: 0.5 })).toBeDefined();
    expect(keep({ ...person, score: 0.49 })).toBeUndefined();
    expect(keep({ ...person, score: Number.NaN })).toBeUndefined();
  });

  it('drops boxes smaller than minArea of the frame, measured inside the frame', () => {
    const keep = objectFilter(settings({ minArea: 0.01 }), FRAME); // 2304 px²
    expect(keep({ ...person, box: { x: 0, y: 0, width: 48, height: 48 } })).toBeDefined();
    expect(keep({ ...person, box: { x: 0, y: 0, width: 47, height: 48 } })).toBeUndefined();
    // mostly outside the frame: only the part inside counts, and the box is cut to the frame
    expect(keep({ ...person, box: { x: -40, y: 0, width: 80, height: 48 } })).toBeUndefined();
    expect(keep({ ...person, box: { x: 600, y: 300, width: 100, height: 100 } })?.box).toEqual({ x: 600, y: 300, width: 40, height: 60 });
    expect(keep({ ...person, box: { x: 700, y: 0, width: 40, height: 40 } })).toBeUndefined();
  });

  it('counts a zoned label only where it stands: the bottom centre of its box', () => {
    const keep = objectFilter(settings({ zones: { vehicle: [drive] } }), FRAME);
    const car = { cocoClass: 'car', score: 0.9, box: { x: 50, y: 150, width: 120, height: 60 } }; // bottom centre (110, 210): on the drive
    expect(keep(car)).toBeDefined();
    // the same car on the street: its roof reaches the drive but its wheels do not
    expect(keep({ ...car, box: { x: 50, y: 100, width: 120, height: 60 } })).toBeUndefined();
    expect(keep({ ...car, box: { x: 400, y: 250, width: 120, height: 60 } })).toBeUndefined();
    // a label without zones counts anywhere
    expect(keep({ ...person, box: { x: 500, y: 10, width: 40, height: 100 } })).toBeDefined();
  });

  it("gives a class's own zones precedence over its group's", () => {
    const street: Polygon = [[0.5, 0], [1, 0], [1, 1], [0.5, 1]];
    const keep = objectFilter(settings({ zones: { vehicle: [drive], car: [drive, street] } }), FRAME);
    const onStreet = { x: 400, y: 250, width: 120, height: 60 };
    expect(keep({ cocoClass: 'car', score: 0.9, box: onStreet })).toBeDefined();
    expect(keep({ cocoClass: 'truck', score: 0.9, box: onStreet })).toBeUndefined();
  });

  it('decides a zone exactly as the motion zones are painted (mask.ts), on random polygons', () => {
    const next = random(7);
    const frame = { width: 64, height: 36 };
    for (let round = 0; round < 200; round++) {
      const n = 3 + Math.floor(next() * 5);
      const polygon = Array.from({ length: n }, () => [Math.round(next() * 16) / 16, Math.round(next() * 12) / 12] as [number, number]);
      const painted = rasterisePolygons([polygon], frame.width, frame.height);
      for (let row = 0; row < frame.height; row++) {
        for (let column = 0; column < frame.width; column++) {
          if (pixelInPolygon(column, row, polygon, frame) !== (painted[row * frame.width + column] === 1)) {
            throw new Error(`pixel ${column},${row} of ${JSON.stringify(polygon)} disagrees with the painted zone`);
          }
        }
      }
    }
    // the bottom-centre pixel of a box whose bottom edge is the frame's: the last row
    expect(standsIn({ x: 0, y: 0, width: 10, height: 36 }, [[0, 0.95], [1, 0.95], [1, 1], [0, 1]], frame)).toBe(true);
    expect(standsIn({ x: 0, y: 0, width: 10, height: 30 }, [[0, 0.95], [1, 0.95], [1, 1], [0, 1]], frame)).toBe(false);
  });
});
