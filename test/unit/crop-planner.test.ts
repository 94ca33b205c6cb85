import { describe, expect, it } from 'vitest';
import { clampBox, type Box } from '../../src/analysis/box.js';
import { CROP_DEFAULTS, coverage, fullFrameCrop, planCrops } from '../../src/analysis/objects/crop-planner.js';

const FRAME = { width: 640, height: 360 };
const FULL: Box = { x: 0, y: -140, width: 640, height: 640 };

const contains = (outer: Box, inner: Box): boolean =>
  inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width && inner.y + inner.height <= outer.y + outer.height;

/** A deterministic pseudo-random sequence (mulberry32), so every run checks the same cases. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('planCrops', () => {
  it('gives the full-frame pass (a centred square of the longer side) when nothing moved', () => {
    expect(planCrops([], FRAME)).toEqual([FULL]);
    expect(fullFrameCrop({ width: 360, height: 640 })).toEqual({ x: -140, y: 0, width: 640, height: 640 });
    expect(fullFrameCrop({ width: 512, height: 512 })).toEqual({ x: 0, y: 0, width: 512, height: 512 });
    // regions wholly outside the frame count as none
    expect(planCrops([{ x: 700, y: 10, width: 20, height: 20 }], FRAME)).toEqual([FULL]);
  });

  it('puts one small region into one square of the minimum side, inside the frame', () => {
    const legs: Box = { x: 300, y: 200, width: 30, height: 40 };
    const crops = planCrops([legs], FRAME);
    expect(crops).toHaveLength(1);
    const [crop] = crops as [Box];
    expect(crop.width).toBe(160);
    expect(crop.height).toBe(160);
    expect(contains(crop, legs)).toBe(true);
    expect(contains({ x: 0, y: 0, ...FRAME }, crop)).toBe(true);
  });

  it('grows the region: a margin around it stays inside the crop', () => {
    const walker: Box = { x: 250, y: 100, width: 80, height: 160 };
    const [crop] = planCrops([walker], FRAME) as [Box];
    const by = CROP_DEFAULTS.margin * 160;
    expect(contains(crop, { x: walker.x - by, y: walker.y - by, width: walker.width + 2 * by, height: walker.height + 2 * by })).toBe(true);
    expect(crop.width).toBe(crop.height);
  });

  it('shifts a square at the edge into the frame rather than cutting it', () => {
    const corner: Box = { x: 0, y: 330, width: 20, height: 30 };
    const [crop] = planCrops([corner], FRAME) as [Box];
    expect(crop).toEqual({ x: 0, y: 200, width: 160, height: 160 });
  });

  it('merges near regions into one crop, and keeps far ones apart', () => {
    const head: Box = { x: 100, y: 60, width: 30, height: 30 };
    const feet: Box = { x: 105, y: 170, width: 30, height: 30 };
    expect(planCrops([head, feet], FRAME)).toHaveLength(1);
    const left: Box = { x: 10, y: 100, width: 40, height: 40 };
    const right: Box = { x: 590, y: 100, width: 40, height: 40 };
    const crops = planCrops([left, right], FRAME);
    expect(crops).toHaveLength(2);
    expect(contains(crops[0]!, left)).toBe(true);
    expect(contains(crops[1]!, right)).toBe(true);
  });

  it('merges regions whose square would still be no larger than the model input (one call, no detail lost)', () => {
    const a: Box = { x: 20, y: 20, width: 40, height: 40 };
    const b: Box = { x: 380, y: 280, width: 40, height: 40 };
    const crops = planCrops([a, b], FRAME);
    expect(crops).toHaveLength(1);
    expect(crops[0]!.width).toBeLessThanOrEqual(512);
    expect(contains(crops[0]!, a) && contains(crops[0]!, b)).toBe(true);
    // with a smaller merge limit they stay apart
    expect(planCrops([a, b], FRAME, { mergeSide: 160 })).toHaveLength(2);
  });

  it('lets a square wider than the frame height stick out, centred vertically', () => {
    const wide: Box = { x: 50, y: 150, width: 450, height: 60 };
    const [crop] = planCrops([wide], FRAME) as [Box];
    expect(crop.width).toBeGreaterThan(360);
    expect(crop.y).toBe(Math.floor((360 - crop.height) / 2));
    expect(contains(crop, wide)).toBe(true);
  });

  it('falls back to the full frame when motion covers most of it', () => {
    expect(planCrops([{ x: 0, y: 0, width: 400, height: 300 }], FRAME)).toEqual([FULL]);
    expect(planCrops([{ x: 0, y: 0, width: 640, height: 360 }], FRAME)).toEqual([FULL]);
  });

  it('falls back to the full frame when there would be more crops than allowed', () => {
    const three: Box[] = [
      { x: 0, y: 0, width: 20, height: 20 },
      { x: 620, y: 0, width: 20, height: 20 },
      { x: 310, y: 340, width: 20, height: 20 },
    ];
    expect(planCrops(three, { width: 1920, height: 1080 }, { mergeSide: 200 })).toEqual([fullFrameCrop({ width: 1920, height: 1080 })]);
    expect(planCrops(three, { width: 1920, height: 1080 }, { mergeSide: 200, maxCrops: 3 })).toHaveLength(3);
  });

  it('holds its properties on random regions: every region inside a crop, crops square and bounded in number', () => {
    const next = random(13);
    const frames = [FRAME, { width: 1920, height: 1080 }, { width: 360, height: 640 }, { width: 320, height: 240 }, { width: 64, height: 64 }];
    for (let round = 0; round < 2000; round++) {
      const frame = frames[round % frames.length]!;
      const n = 1 + Math.floor(next() * 8);
      const regions: Box[] = Array.from({ length: n }, () => {
        const width = 1 + Math.floor(next() * frame.width * (next() < 0.8 ? 0.15 : 0.6));
        const height = 1 + Math.floor(next() * frame.height * (next() < 0.8 ? 0.15 : 0.6));
        return { x: Math.floor(next() * (frame.width + 20)) - 10, y: Math.floor(next() * (frame.height + 20)) - 10, width, height };
      });
      const maxCrops = 1 + (round % 4);
      const crops = planCrops(regions, frame, { maxCrops });
      expect(crops.length).toBeGreaterThanOrEqual(1);
      expect(crops.length).toBeLessThanOrEqual(maxCrops);
      const longer = Math.max(frame.width, frame.height);
      for (const c of crops) {
        expect(c.width).toBe(c.height);
        expect(Number.isInteger(c.x) && Number.isInteger(c.y) && Number.isInteger(c.width)).toBe(true);
        expect(c.width).toBeLessThanOrEqual(longer);
        // along an axis the square fits in, it lies inside the frame
        if (c.width <= frame.width) expect(c.x >= 0 && c.x + c.width <= frame.width).toBe(true);
        if (c.height <= frame.height) expect(c.y >= 0 && c.y + c.height <= frame.height).toBe(true);
      }
      for (const r of regions) {
        const inFrame = clampBox(r, frame.width, frame.height);
        if (inFrame.width === 0 || inFrame.height === 0) continue;
        expect(crops.some((c) => contains(c, inFrame))).toBe(true);
      }
    }
  });
});

describe('coverage', () => {
  it('counts overlaps once', () => {
    expect(coverage([{ x: 0, y: 0, width: 320, height: 360 }], FRAME)).toBeCloseTo(0.5, 2);
    expect(coverage([{ x: 0, y: 0, width: 320, height: 360 }, { x: 0, y: 0, width: 320, height: 360 }], FRAME)).toBeCloseTo(0.5, 2);
    expect(coverage([{ x: 0, y: 0, width: 320, height: 180 }, { x: 320, y: 180, width: 320, height: 180 }], FRAME)).toBeCloseTo(0.5, 2);
    expect(coverage([], FRAME)).toBe(0);
  });
});
