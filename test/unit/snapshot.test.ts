import { readdirSync } from 'node:fs';
import os from 'node:os';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { AnalysisFrame } from '../../src/cameras/frame.js';
import type { Polygon } from '../../src/config/schema.js';
import { CamveilError } from '../../src/errors.js';
import { encodeSnapshot } from '../../src/recording/snapshot.js';

const WIDTH = 640;
const HEIGHT = 360;
/** A real photo, bright all over (every quadrant's mean is above 100), so black can only come from a mask. */
const PHOTO = 'node_modules/@vladmandic/face-api/demo/sample6.jpg';
const LEFT_HALF: Polygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]];

async function photoFrame(): Promise<AnalysisFrame> {
  const data = await sharp(PHOTO).resize(WIDTH, HEIGHT, { fit: 'cover' }).removeAlpha().raw().toBuffer();
  return { cameraId: 'porch', at: 1_700_000_000_000, seq: 7, width: WIDTH, height: HEIGHT, data };
}

/** Mean of all channels over columns [x0, x1) of an RGB24 image. */
function meanOfColumns(rgb: Buffer, width: number, height: number, x0: number, x1: number): number {
  let sum = 0;
  for (let y = 0; y < height; y++) for (let k = (y * width + x0) * 3; k < (y * width + x1) * 3; k++) sum += rgb[k]!;
  return sum / ((x1 - x0) * height * 3);
}

function jpegsIn(dir: string): Set<string> {
  return new Set(readdirSync(dir).filter((name) => /\.jpe?g$/i.test(name)));
}

describe('encodeSnapshot', () => {
  it('encodes a JPEG of the frame with privacy masks painted black, leaving the frame untouched', async () => {
    const frame = await photoFrame();
    const original = Buffer.from(frame.data);
    const snapshot = await encodeSnapshot(frame, { eventId: 'ev-1', privacyMasks: [LEFT_HALF] });

    expect(snapshot).toMatchObject({ eventId: 'ev-1', cameraId: 'porch', at: frame.at, contentType: 'image/jpeg', width: WIDTH, height: HEIGHT });
    expect(frame.data.equals(original)).toBe(true);

    const decoded = await sharp(snapshot.jpeg).raw().toBuffer({ resolveWithObject: true });
    expect(decoded.info).toMatchObject({ format: 'raw', width: WIDTH, height: HEIGHT, channels: 3 });
    // Keep a few pixels away from the mask's edge, where JPEG's 8x8 blocks blur black into the picture.
    expect(meanOfColumns(decoded.data, WIDTH, HEIGHT, 0, 312)).toBeLessThan(10);
    expect(meanOfColumns(original, WIDTH, HEIGHT, 328, WIDTH)).toBeGreaterThan(60);
    expect(meanOfColumns(decoded.data, WIDTH, HEIGHT, 328, WIDTH)).toBeGreaterThan(60);
  });

  it('carries no metadata beyond the pixels', async () => {
    const snapshot = await encodeSnapshot(await photoFrame(), { eventId: 'ev-2', privacyMasks: [] });
    const meta = await sharp(snapshot.jpeg).metadata();
    expect(meta.format).toBe('jpeg');
    expect(meta.exif).toBeUndefined();
    expect(meta.icc).toBeUndefined();
  });

  it('follows the quality setting', async () => {
    const frame = await photoFrame();
    const low = await encodeSnapshot(frame, { eventId: 'ev-3', privacyMasks: [], quality: 30 });
    const high = await encodeSnapshot(frame, { eventId: 'ev-3', privacyMasks: [], quality: 95 });
    expect(low.jpeg.length).toBeLessThan(high.jpeg.length);
  });

  it('never writes a file: no new JPEG appears in the temporary directory', async () => {
    const frame = await photoFrame();
    const before = jpegsIn(os.tmpdir());
    for (let i = 0; i < 3; i++) await encodeSnapshot(frame, { eventId: `ev-${i}`, privacyMasks: [LEFT_HALF] });
    const added = [...jpegsIn(os.tmpdir())].filter((name) => !before.has(name));
    expect(added).toEqual([]);
  });

  it('rejects a frame whose bytes do not match its size, and a quality outside 1..100', async () => {
    const frame = await photoFrame();
    await expect(encodeSnapshot({ ...frame, height: HEIGHT - 2 }, { eventId: 'ev-4', privacyMasks: [] })).rejects.toBeInstanceOf(CamveilError);
    await expect(encodeSnapshot(frame, { eventId: 'ev-4', privacyMasks: [], quality: 0 })).rejects.toThrow(/quality/);
  });
});
