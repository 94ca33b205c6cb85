import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import sharp, { type Region, type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/analysis/faces/backend.js';
import { distance, FaceEngine, type Face } from '../../src/analysis/faces/face-engine.js';
import { decodeImage, readImageFile, type RgbImage } from '../../src/analysis/faces/image-input.js';
import { DEFAULT_MANIFEST_PATH, defaultModelDir, verifyModels } from '../../src/analysis/model-files.js';
import { MATCH_THRESHOLD } from '../../src/analysis/faces/threshold.js';
import { runFacesCompare, runFacesDetect } from '../../src/commands/faces.js';
import type { CommandIO } from '../../src/commands/io.js';
import { CamveilError } from '../../src/errors.js';

// Real nets on the wasm backend and the photos npm installs with face-api: sample1.jpg holds three
// different women side by side (all faces usable), sample5.jpg five different women on a staircase.
const DEMO = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');
const MANIFEST_FILES = ['ssd_mobilenetv1', 'tiny_face_detector', 'face_landmark_68', 'face_recognition'].flatMap((n) => [`${n}_model-weights_manifest.json`, `${n}_model.bin`]);

let engine: FaceEngine;
let dir: string;
let sample1: RgbImage;
let faces1: Face[];
let descriptors1: Float32Array[];

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
}

async function raw(pipeline: Sharp): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** The face's box grown by `margin` × its size on every side, clipped to the image. */
function region(face: Face, image: RgbImage, margin: number): Region {
  const left = Math.max(0, Math.round(face.box.x - margin * face.box.width));
  const top = Math.max(0, Math.round(face.box.y - margin * face.box.height));
  const right = Math.min(image.width, Math.round(face.box.x + (1 + margin) * face.box.width));
  const bottom = Math.min(image.height, Math.round(face.box.y + (1 + margin) * face.box.height));
  return { left, top, width: right - left, height: bottom - top };
}

async function cropFile(name: string, face: Face, margin: number, edit: (s: Sharp) => Sharp = (s) => s.jpeg()): Promise<string> {
  const file = join(dir, name);
  await edit(sharp(join(DEMO, 'sample1.jpg')).extract(region(face, sample1, margin))).toFile(file);
  return file;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'camveil-faces-'));
  engine = await FaceEngine.open();
  sample1 = await readImageFile(join(DEMO, 'sample1.jpg'));
  faces1 = await engine.detect(sample1);
  descriptors1 = [];
  for (const face of faces1) descriptors1.push(await engine.describe(sample1, face));
});

afterAll(async () => {
  engine.unload();
  await rm(dir, { recursive: true, force: true });
});

describe('face engine on the wasm backend', () => {
  it('runs on wasm with SIMD, never the plain JS cpu backend', async () => {
    expect(await initBackend()).toEqual({ name: 'wasm', simd: true });
    expect(engine.backend).toEqual({ name: 'wasm', simd: true });
    expect(tf.getBackend()).toBe('wasm');
  });

  it('finds the faces in the sample photos, best score first', async () => {
    expect(faces1).toHaveLength(3);
    expect(faces1.every((f) => f.quality.ok)).toBe(true);
    expect(faces1.map((f) => f.score)).toEqual([...faces1.map((f) => f.score)].sort((a, b) => b - a));
    const sample5 = await engine.detect(await readImageFile(join(DEMO, 'sample5.jpg')));
    expect(sample5).toHaveLength(5);
    for (const f of [...faces1, ...sample5]) {
      expect(f.box.width).toBeGreaterThan(100);
      expect(f.box.height).toBeGreaterThan(100);
    }
    // The padded pass (scaled down, bordered) maps its box back onto the same face. (On the whole
    // 1920 px photo it would shrink the faces too far: padding is for faces that fill the image.)
    const portrait = await readImageFile(await cropFile('portrait.png', faces1[1]!, 0.2, (s) => s.png()));
    const [plain] = await engine.detect(portrait, { pad: 'never' });
    const [padded] = await engine.detect(portrait, { pad: 'always' });
    for (const key of ['x', 'y', 'width', 'height'] as const) {
      expect(Math.abs(padded!.box[key] - plain!.box[key])).toBeLessThan(0.1 * plain!.box.width);
    }
  });

  it('returns 68 landmarks on request, and describe() reuses them', async () => {
    const [face] = await engine.detect(sample1, { landmarks: true });
    expect(face?.landmarks).toHaveLength(68);
    for (const p of face!.landmarks!) {
      expect(p.x).toBeGreaterThan(face!.box.x - 0.2 * face!.box.width);
      expect(p.x).toBeLessThan(face!.box.x + 1.2 * face!.box.width);
    }
    expect(distance(await engine.describe(sample1, face!), descriptors1[0]!)).toBeLessThan(1e-5);
  });

  it('keeps the same person under the threshold after crop, ×0.6 scale, JPEG quality 40 and +30% brightness', async () => {
    for (const [i, face] of faces1.entries()) {
      const file = await cropFile(`degraded${i}.jpg`, face, 0.5, (s) =>
        s
          .resize({ width: Math.round(region(face, sample1, 0.5).width * 0.6) })
          .modulate({ brightness: 1.3 })
          .jpeg({ quality: 40 }),
      );
      const image = await readImageFile(file);
      const [best] = await engine.detect(image);
      expect(best?.quality.ok).toBe(true);
      const d = await engine.describe(image, best!);
      expect(distance(d, descriptors1[i]!)).toBeLessThan(MATCH_THRESHOLD);
      for (const [j, other] of descriptors1.entries()) if (j !== i) expect(distance(d, other)).toBeGreaterThan(MATCH_THRESHOLD);
    }
  });

  it('puts different people in the same photo over the threshold', async () => {
    const sample5 = await readImageFile(join(DEMO, 'sample5.jpg'));
    const faces5 = (await engine.detect(sample5)).filter((f) => f.quality.ok);
    const all = [...descriptors1];
    for (const f of faces5) all.push(await engine.describe(sample5, f));
    for (let i = 0; i < descriptors1.length; i++) {
      for (let j = i + 1; j < descriptors1.length; j++) expect(distance(all[i]!, all[j]!)).toBeGreaterThan(MATCH_THRESHOLD);
    }
    for (let i = descriptors1.length; i < all.length; i++) {
      for (let j = i + 1; j < all.length; j++) expect(distance(all[i]!, all[j]!)).toBeGreaterThan(MATCH_THRESHOLD);
    }
  });

  it('accepts greyscale (IR) and RGBA frames as well as RGB24', async () => {
    const small = sharp(join(DEMO, 'sample1.jpg')).resize({ width: 960 });
    const grey = await raw(small.clone().greyscale());
    const rgba = await raw(small.clone().ensureAlpha());
    expect(grey.channels).toBe(1);
    expect(rgba.channels).toBe(4);
    const greyFaces = await engine.detect({ ...grey, channels: 1 });
    const rgbaFaces = await engine.detect({ ...rgba, channels: 4 });
    expect(greyFaces.filter((f) => f.quality.ok)).toHaveLength(3);
    expect(rgbaFaces.filter((f) => f.quality.ok)).toHaveLength(3);
    const rgb = await raw(small.clone().removeAlpha());
    const fromRgb = await engine.describe({ ...rgb, channels: 3 }, rgbaFaces[0]!);
    expect(distance(await engine.describe({ ...rgba, channels: 4 }, rgbaFaces[0]!), fromRgb)).toBeLessThan(1e-5);
    await expect(engine.detect({ width: 10, height: 10, data: new Uint8Array(299), channels: 3 })).rejects.toMatchObject({
      code: 'CAMVEIL_E_IMAGE_INVALID',
    });
  });

  it('finds a face that fills the whole image by padding it first', async () => {
    // Cut 10% inside the detected box on every side, like the tight 150×150 crops of enrolment photos.
    const file = await cropFile('tight.png', faces1[0]!, -0.1, (s) => s.resize({ width: 150 }).png());
    const image = await readImageFile(file);
    expect(await engine.detect(image, { pad: 'never' })).toEqual([]);
    const found = await engine.detect(image);
    expect(found).toHaveLength(1);
    expect(found[0]!.quality.ok).toBe(true);
    expect(found[0]!.box.width).toBeGreaterThan(100);
    expect(distance(await engine.describe(image, found[0]!), descriptors1[0]!)).toBeLessThan(MATCH_THRESHOLD);
  });

  it('turns photos upright by their EXIF orientation', async () => {
    // Stored sideways (pixels turned 90° anticlockwise) with orientation 6: "turn 90° clockwise to view".
    const file = await cropFile('sideways.jpg', faces1[1]!, 0.5, (s) => s.rotate(270).withMetadata({ orientation: 6 }).jpeg());
    const image = await readImageFile(file);
    expect(image.height).toBeGreaterThan(image.width * 0.9); // upright: as tall as the crop was
    const [best] = await engine.detect(image);
    expect(best?.quality.ok).toBe(true);
    expect(distance(await engine.describe(image, best!), descriptors1[1]!)).toBeLessThan(MATCH_THRESHOLD);
  });

  it('marks faces under 40 px too-small', async () => {
    const tiny = await raw(sharp(join(DEMO, 'sample1.jpg')).resize({ width: 320 }).removeAlpha());
    const found = await engine.detect({ ...tiny, channels: 3 }, { pad: 'never' });
    expect(found).toHaveLength(3); // faces some 30 px wide
    for (const f of found) expect(f.quality).toEqual({ ok: false, reason: 'too-small' });
  });

  it('gives clear errors for an empty file, a text file and an image without a face', async () => {
    await writeFile(join(dir, 'empty.jpg'), '');
    await writeFile(join(dir, 'notes.txt'), 'not an image\n');
    await expect(readImageFile(join(dir, 'empty.jpg'))).rejects.toThrow(/empty\.jpg: the file is empty/);
    await expect(readImageFile(join(dir, 'empty.jpg'))).rejects.toMatchObject({ code: 'CAMVEIL_E_IMAGE_INVALID' });
    await expect(readImageFile(join(dir, 'notes.txt'))).rejects.toThrow(/notes\.txt: not an image/);
    await expect(readImageFile(join(dir, 'notes.txt'))).rejects.toMatchObject({ code: 'CAMVEIL_E_IMAGE_INVALID' });
    await expect(readImageFile(join(dir, 'missing.jpg'))).rejects.toMatchObject({ code: 'CAMVEIL_E_IMAGE_INVALID' });
    await expect(decodeImage(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0]))).rejects.toBeInstanceOf(CamveilError);
    // A few hundred bytes of PNG whose header claims 12,000 × 12,000 (432 MB of RGB, under sharp's own default
    // limit): refused from the header, before anything is decoded.
    const bomb = Buffer.from(await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toBuffer());
    bomb.writeUInt32BE(12_000, 16);
    bomb.writeUInt32BE(12_000, 20);
    bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)) >>> 0, 29);
    await expect(decodeImage(bomb, 'bomb.png')).rejects.toMatchObject({ code: 'CAMVEIL_E_IMAGE_INVALID', message: 'bomb.png: the image has more than 50 megapixels' });
    // The wall above the three women: no face.
    const wall = await raw(sharp(join(DEMO, 'sample1.jpg')).extract({ left: 0, top: 0, width: 1920, height: 200 }).removeAlpha());
    expect(await engine.detect({ ...wall, channels: 3 })).toEqual([]);
  });
});

describe('verifyModels', () => {
  async function copyModels(): Promise<string> {
    const to = join(dir, `models-${Math.random().toString(36).slice(2)}`);
    await mkdir(to);
    for (const f of MANIFEST_FILES) await copyFile(join(defaultModelDir('faces'), f), join(to, f));
    return to;
  }

  it('accepts the pinned files and returns their bytes', async () => {
    const models = await verifyModels('faces');
    expect([...models.files.keys()].sort()).toEqual([...MANIFEST_FILES].sort());
  });

  it('refuses a copy with one flipped byte, naming the file and the digest', async () => {
    const to = await copyModels();
    const file = join(to, 'face_recognition_model.bin');
    const bytes = await readFile(file);
    bytes[1000] = bytes[1000]! ^ 0x01;
    await writeFile(file, bytes);
    const error = await verifyModels('faces', to).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CAMVEIL_E_MODEL_INVALID' });
    expect((error as Error).message).toMatch(/face_recognition_model\.bin: SHA-256 [0-9a-f]{64}, manifest says b413e420/);
    await expect(new FaceEngine({ modelDir: to }).load()).rejects.toMatchObject({ code: 'CAMVEIL_E_MODEL_INVALID' });
  });

  it('refuses missing and truncated files, and an invalid manifest', async () => {
    const to = await copyModels();
    await rm(join(to, 'ssd_mobilenetv1_model.bin'));
    await writeFile(join(to, 'face_landmark_68_model.bin'), Buffer.alloc(10));
    const error = await verifyModels('faces', to).catch((e: unknown) => e);
    expect((error as Error).message).toContain('ssd_mobilenetv1_model.bin: missing');
    expect((error as Error).message).toContain('face_landmark_68_model.bin: size 10 bytes, manifest says 356840');
    const manifest = JSON.parse(await readFile(DEFAULT_MANIFEST_PATH, 'utf8')) as { nets: { faces: { files: Array<{ name: string }> } } };
    manifest.nets.faces.files[0]!.name = '../escape.json';
    await writeFile(join(to, 'manifest.json'), JSON.stringify({ ...manifest, extra: 1 }));
    const bad = await verifyModels('faces', defaultModelDir('faces'), join(to, 'manifest.json')).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'CAMVEIL_E_MODEL_INVALID' });
    expect((bad as Error).message).toContain('nets.faces.files.0.name');
  });
});

describe('faces commands', () => {
  it('faces detect lists faces with box, score and quality', async () => {
    const io = capture();
    expect(await runFacesDetect(await cropFile('one.jpg', faces1[2]!, 0.5), { json: true, engine }, io)).toBe(0);
    const out = JSON.parse(io.out[0]!) as { faces: Array<{ quality: { ok: boolean } }> };
    expect(out.faces).toHaveLength(1);
    expect(out.faces[0]!.quality.ok).toBe(true);
  });

  it('faces compare: 0 with a verdict, 2 for no usable face or not an image', async () => {
    const a = join(dir, 'degraded0.jpg');
    const b = await cropFile('b.jpg', faces1[0]!, 0.3);
    const c = await cropFile('c.jpg', faces1[1]!, 0.3);
    let io = capture();
    expect(await runFacesCompare(a, b, { json: true, engine }, io)).toBe(0);
    expect(JSON.parse(io.out[0]!)).toMatchObject({ match: true, threshold: MATCH_THRESHOLD });
    io = capture();
    expect(await runFacesCompare(a, c, {}, io)).toBe(0); // loads and unloads its own engine
    expect(io.out[0]).toMatch(/^distance \d\.\d{4}, threshold [\d.]+: different people/);
    io = capture();
    await sharp(join(DEMO, 'sample1.jpg')).extract({ left: 0, top: 0, width: 600, height: 200 }).jpeg().toFile(join(dir, 'wall.jpg'));
    expect(await runFacesCompare(a, join(dir, 'wall.jpg'), { engine }, io)).toBe(2);
    expect(io.err[0]).toMatch(/^CAMVEIL_E_NO_FACE: .*wall\.jpg: no face found/);
    io = capture();
    expect(await runFacesCompare(join(dir, 'notes.txt'), a, { engine }, io)).toBe(2);
    expect(io.err[0]).toMatch(/^CAMVEIL_E_IMAGE_INVALID: /);
  });
});

describe('lifecycle', () => {
  it('counts detect and describe calls, and unload() frees every tensor', async () => {
    const before = engine.stats();
    await engine.detect({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3), channels: 3 }, { pad: 'never' });
    expect(engine.stats()).toEqual({ detectCalls: before.detectCalls + 1, describeCalls: before.describeCalls });
    expect(tf.memory().numTensors).toBeGreaterThan(0);
    engine.unload();
    expect(engine.loaded).toBe(false);
    expect(tf.memory().numTensors).toBe(0);
    await expect(engine.detect(sample1)).rejects.toMatchObject({ code: 'CAMVEIL_E_INTERNAL' });
    await engine.load();
    expect(engine.loaded).toBe(true);
  });
});
