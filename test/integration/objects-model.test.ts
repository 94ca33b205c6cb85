import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Box } from '../../src/analysis/box.js';
import { readImageFile, type RgbImage } from '../../src/analysis/faces/image-input.js';
import { defaultModelDir, verifyModels } from '../../src/analysis/model-files.js';
import { modelSideFor } from '../../src/analysis/objects/centernet.js';
import { fullFrameCrop } from '../../src/analysis/objects/crop-planner.js';
import { DEFAULT_MIN_SCORE } from '../../src/analysis/objects/object-classes.js';
import { ObjectWorkerClient, type RawDetection } from '../../src/analysis/objects/object-worker-client.js';
import { runObjectsDetect } from '../../src/commands/objects-detect.js';
import type { CommandIO } from '../../src/commands/io.js';
import { camveilCli } from '../harness/hub-process.js';

// The real object net (MB3-CenterNet from @vladmandic/human) in a real model worker thread, on the photos
// npm installs with face-api: each of sample1..6 shows two to five people.
const DEMO = path.join(path.dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');
const SAMPLES = [1, 2, 3, 4, 5, 6].map((i) => path.join(DEMO, `sample${i}.jpg`));

const people = (detections: readonly RawDetection[], minScore = DEFAULT_MIN_SCORE) => detections.filter((d) => d.cocoClass === 'person' && d.score >= minScore);

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
}

/** A photo shrunk to `height` and pasted on a black frame at `at` (given the shrunk photo's size). */
async function pasted(
  file: string,
  height: number,
  frame: { width: number; height: number },
  at: (size: { width: number; height: number }) => { x: number; y: number },
): Promise<{ frame: RgbImage; region: Box }> {
  const small = await sharp(file).rotate().resize({ height }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { x, y } = at(small.info);
  const data = await sharp({ create: { width: frame.width, height: frame.height, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .composite([{ input: small.data, raw: { width: small.info.width, height: small.info.height, channels: 3 }, left: x, top: y }])
    .removeAlpha()
    .raw()
    .toBuffer();
  return { frame: { ...frame, data, channels: 3 }, region: { x, y, width: small.info.width, height: small.info.height } };
}

/** The photo scaled to 640 px wide, the size of a hub's analysis frame (the whole-image pass sees 512 px anyway). */
async function cameraSized(image: RgbImage): Promise<RgbImage> {
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).resize({ width: 640 }).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data, channels: 3 };
}

function inside(box: Box, region: Box, slack = 2): boolean {
  return box.x >= region.x - slack && box.y >= region.y - slack && box.x + box.width <= region.x + region.width + slack && box.y + box.height <= region.y + region.height + slack;
}

describe('the object net', () => {
  let client: ObjectWorkerClient;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-objects-'));

  beforeAll(async () => {
    client = new ObjectWorkerClient();
    await client.load();
  }, 240_000);

  afterAll(async () => {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the model files verify against the objects section of the manifest', async () => {
    const models = await verifyModels('objects');
    expect([...models.files.keys()].sort()).toEqual(['centernet.bin', 'centernet.json']);
    expect(client.backend).toMatch(/^(wasm|tensorflow)$/);
  });

  it('finds a person above the operating threshold on each demo photo, one model call for the whole image', async () => {
    for (const file of SAMPLES) {
      const image = await cameraSized(await readImageFile(file));
      const before = client.modelCalls;
      const { detections } = await client.detect(image, [fullFrameCrop(image)]);
      expect(client.modelCalls - before, file).toBe(1);
      expect(people(detections).length, file).toBeGreaterThanOrEqual(1);
      for (const d of detections) {
        expect(d.box.x).toBeGreaterThanOrEqual(0);
        expect(d.box.y).toBeGreaterThanOrEqual(0);
        expect(d.box.x + d.box.width).toBeLessThanOrEqual(image.width);
        expect(d.box.y + d.box.height).toBeLessThanOrEqual(image.height);
      }
      // Best first.
      expect(detections.map((d) => d.score)).toEqual([...detections.map((d) => d.score)].sort((a, b) => b - a));
    }
  }, 240_000);

  it('maps boxes from a crop back to frame pixels, also from a crop reaching past the frame edge', async () => {
    // sample6 (four women) shrunk to 200 px high, pasted at (900, 300) in a black 1280×720 frame.
    const { frame, region } = await pasted(SAMPLES[5]!, 200, { width: 1280, height: 720 }, () => ({ x: 900, y: 300 }));
    const side = Math.max(region.width, region.height) + 40;
    const centred: Box = { x: region.x + region.width / 2 - side / 2, y: region.y + region.height / 2 - side / 2, width: side, height: side };
    const { detections } = await client.detect(frame, [centred]);
    const found = people(detections);
    expect(found.length).toBeGreaterThanOrEqual(2);
    for (const d of found) expect(inside(d.box, region), JSON.stringify(d.box)).toBe(true);

    // The same photo in the bottom-right corner; the crop, centred on it, sticks out of the frame right and below.
    const corner = await pasted(SAMPLES[5]!, 200, { width: 1280, height: 720 }, (size) => ({ x: 1280 - size.width, y: 720 - size.height }));
    const big = side + 80;
    const past: Box = { x: corner.region.x + corner.region.width / 2 - big / 2, y: corner.region.y + corner.region.height / 2 - big / 2, width: big, height: big };
    expect(past.x + past.width).toBeGreaterThan(1280);
    expect(past.y + past.height).toBeGreaterThan(720);
    const out = await client.detect(corner.frame, [past]);
    const cornerPeople = people(out.detections);
    expect(cornerPeople.length).toBeGreaterThanOrEqual(2);
    for (const d of cornerPeople) expect(inside(d.box, corner.region), JSON.stringify(d.box)).toBe(true);
  }, 240_000);

  it('one person seen in two overlapping crops is one detection', async () => {
    const { frame, region } = await pasted(SAMPLES[0]!, 160, { width: 1280, height: 720 }, () => ({ x: 400, y: 200 }));
    const side = 320;
    const a: Box = { x: region.x - 40, y: region.y - 60, width: side, height: side };
    const b: Box = { x: region.x - 20, y: region.y - 100, width: side, height: side };
    expect(modelSideFor(side)).toBe(320);
    const onlyA = people((await client.detect(frame, [a])).detections);
    const onlyB = people((await client.detect(frame, [b])).detections);
    const before = client.modelCalls;
    const both = people((await client.detect(frame, [a, b])).detections);
    expect(client.modelCalls - before).toBe(2);
    expect(both.length).toBeGreaterThanOrEqual(1);
    // Without the merge across crops every person would be counted once per crop.
    expect(both.length).toBeLessThanOrEqual(Math.max(onlyA.length, onlyB.length));
    expect(onlyA.length + onlyB.length).toBeGreaterThan(both.length);
  }, 240_000);

  it('a tampered centernet.bin is refused, naming the file', async () => {
    const models = path.join(dir, 'models');
    rmSync(models, { recursive: true, force: true });
    mkdirSync(models);
    for (const name of ['centernet.json', 'centernet.bin']) copyFileSync(path.join(defaultModelDir('objects'), name), path.join(models, name));
    const bytes = readFileSync(path.join(models, 'centernet.bin'));
    bytes[4096] = bytes[4096]! ^ 0x01;
    writeFileSync(path.join(models, 'centernet.bin'), bytes);

    await expect(verifyModels('objects', models)).rejects.toMatchObject({ code: 'CAMVEIL_E_MODEL_INVALID' });
    process.env.CAMVEIL_OBJECT_MODEL_DIR = models;
    const tampered = new ObjectWorkerClient();
    try {
      const error = await tampered.load().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CAMVEIL_E_MODEL_INVALID' });
      expect((error as Error).message).toMatch(/centernet\.bin: SHA-256 [0-9a-f]{64}, manifest says 1b635a15/);
      expect((error as Error).message).not.toContain('centernet.json');
    } finally {
      delete process.env.CAMVEIL_OBJECT_MODEL_DIR;
      await tampered.close();
    }
  }, 240_000);

  it('objects detect: the people on the demo photos, best first, in image pixels; a non-image is named and exits 2', async () => {
    const notImage = path.join(dir, 'notes.jpg');
    writeFileSync(notImage, 'not a photo');
    const io = capture();
    expect(await runObjectsDetect([SAMPLES[0]!, notImage, SAMPLES[5]!], { json: true, client }, io)).toBe(2);
    expect(io.err.join('\n')).toContain(`CAMVEIL_E_IMAGE_INVALID: ${notImage}`);
    const lines = io.out.map((l) => JSON.parse(l) as { image: string; width: number; height: number; objects: Array<{ label: string; class: string; score: number; box: Box }> });
    expect(lines.map((l) => l.image)).toEqual([SAMPLES[0], SAMPLES[5]]);
    for (const line of lines) {
      expect(line.width).toBe(1920);
      const persons = line.objects.filter((o) => o.label === 'person' && o.class === 'person');
      expect(persons.length, line.image).toBeGreaterThanOrEqual(2);
      for (const o of line.objects) {
        expect(o.score).toBeGreaterThanOrEqual(DEFAULT_MIN_SCORE);
        expect(o.box.x + o.box.width).toBeLessThanOrEqual(line.width + 0.5);
        expect(o.box.y + o.box.height).toBeLessThanOrEqual(line.height + 0.5);
      }
      expect(line.objects.map((o) => o.score)).toEqual([...line.objects.map((o) => o.score)].sort((a, b) => b - a));
    }
    // A lower threshold reports at least as much.
    const low = capture();
    expect(await runObjectsDetect([SAMPLES[2]!], { json: true, minScore: 0.2, client }, low)).toBe(0);
    const high = capture();
    expect(await runObjectsDetect([SAMPLES[2]!], { json: true, minScore: 0.6, client }, high)).toBe(0);
    const count = (c: { out: string[] }) => (JSON.parse(c.out[0]!) as { objects: unknown[] }).objects.length;
    expect(count(low)).toBeGreaterThan(count(high));
    // Text: a header line per image, then one line per object.
    const text = capture();
    expect(await runObjectsDetect([SAMPLES[0]!], { client }, text)).toBe(0);
    expect(text.out[0]).toContain(`${SAMPLES[0]} (1920x1280): `);
    expect(text.out[1]).toMatch(/^ {2}person \(person\) score 0\.\d\d at \d+,\d+ size \d+x\d+$/);
  }, 240_000);
});

describe('camveil objects detect (the CLI)', () => {
  it('prints one JSON line per image with the people found; exit 2 for a non-image, naming it, and for bad usage', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-objects-cli-'));
    try {
      const notImage = path.join(dir, 'empty.png');
      writeFileSync(notImage, '');
      const r = await camveilCli(['objects', 'detect', '--json', SAMPLES[4]!, notImage], 200_000);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(notImage);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { image: string; objects: Array<{ label: string }> });
      expect(lines).toHaveLength(1);
      expect(lines[0]!.image).toBe(SAMPLES[4]);
      expect(lines[0]!.objects.filter((o) => o.label === 'person').length).toBeGreaterThanOrEqual(2);

      expect((await camveilCli(['objects', 'detect', '--min-score', '1.5', SAMPLES[0]!], 120_000)).code).toBe(2);
      expect((await camveilCli(['objects', 'detect'], 120_000)).code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
