import { describe, expect, it } from 'vitest';
import { suppressDuplicates, type Detection } from '../../src/analysis/objects/suppress-duplicates.js';

const d = (classIndex: number, score: number, x: number, y: number, width: number, height: number, crop = 0): Detection & { crop: number } => ({
  classIndex,
  score,
  box: { x, y, width, height },
  crop,
});

// COCO indices: 0 person, 1 bicycle, 2 car, 7 truck, 15 cat, 16 dog.
const GROUP: Record<number, string> = { 0: 'person', 1: 'vehicle', 2: 'vehicle', 7: 'vehicle', 15: 'animal', 16: 'animal' };
const familyOf = (c: number) => GROUP[c] ?? `class ${c}`;

describe('suppressDuplicates', () => {
  it('keeps the best of overlapping boxes of one class, best first, and boxes that do not overlap', () => {
    const out = suppressDuplicates([d(0, 0.5, 0, 0, 100, 200), d(0, 0.7, 5, 5, 100, 200), d(0, 0.6, 300, 0, 100, 200)]);
    expect(out.map((x) => x.score)).toEqual([0.7, 0.6]);
  });

  it('by family: a car also scored as a truck is one vehicle; a person on a bicycle stays two objects', () => {
    const car = d(2, 0.6, 100, 100, 200, 100);
    const truck = d(7, 0.3, 104, 98, 200, 104);
    const rider = d(0, 0.8, 150, 40, 80, 160);
    const bicycle = d(1, 0.5, 140, 110, 100, 90);
    expect(suppressDuplicates([car, truck], { familyOf })).toEqual([car]);
    // Class by class (the default) both stay.
    expect(suppressDuplicates([car, truck])).toHaveLength(2);
    expect(suppressDuplicates([rider, bicycle], { familyOf })).toEqual([rider, bicycle]);
  });

  it('containment: a box cut by its crop edge inside a better box of its family goes; uncut, it stays', () => {
    const whole = d(0, 0.8, 100, 100, 60, 180, 0);
    const half = d(0, 0.5, 100, 100, 60, 80, 1); // IoU 0.44: not a duplicate by IoU alone
    const truncated = (x: Detection & { crop: number }) => x.crop === 1;
    expect(suppressDuplicates([whole, half], { containment: { fraction: 0.8, truncated } })).toEqual([whole]);
    expect(suppressDuplicates([whole, half], { containment: { fraction: 0.8, truncated: () => false } })).toHaveLength(2);
    expect(suppressDuplicates([whole, half])).toHaveLength(2);
  });
});
