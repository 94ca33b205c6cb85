import { describe, expect, it } from 'vitest';
import { cropRgb, peopleArea } from '../../src/analysis/faces/people-area.js';

const FRAME = { width: 640, height: 360 };

describe('peopleArea: where the face stage looks when the objects analyser found people', () => {
  it('grows a person box upwards (the head) and sideways, on whole pixels', () => {
    const area = peopleArea([{ x: 100, y: 100, width: 50, height: 200 }], FRAME)!;
    expect(area).toEqual({ x: 95, y: 70, width: 60, height: 230 });
  });

  it('one area holds every person; it is cut to the frame', () => {
    const area = peopleArea([{ x: 2, y: 10, width: 40, height: 100 }, { x: 600, y: 200, width: 60, height: 200 }], FRAME)!;
    expect(area.x).toBe(0);
    expect(area.y).toBe(0);
    expect(area.x + area.width).toBe(640);
    expect(area.y + area.height).toBe(360);
  });

  it('no people, or only empty boxes, is no area', () => {
    expect(peopleArea([], FRAME)).toBeUndefined();
    expect(peopleArea([{ x: 700, y: 400, width: 10, height: 10 }], FRAME)).toBeUndefined();
  });

  it('cropRgb copies exactly the area, row by row', () => {
    const width = 4;
    const data = new Uint8Array(width * 3 * 3);
    for (let i = 0; i < data.length; i++) data[i] = i;
    const crop = cropRgb({ width, data }, { x: 1, y: 1, width: 2, height: 2 });
    expect(crop.width).toBe(2);
    expect(crop.height).toBe(2);
    // Row 1, pixels 1-2 = bytes 15..20; row 2, pixels 1-2 = bytes 27..32.
    expect([...crop.data]).toEqual([15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
  });
});
