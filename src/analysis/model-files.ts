import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CamveilError } from '../errors.js';

const require = createRequire(import.meta.url);

/** The nets whose files models/manifest.json pins, one section each. */
export const MODEL_NETS = ['faces', 'objects'] as const;
export type ModelNet = (typeof MODEL_NETS)[number];

/**
 * Where each net's files ship (the npm package and its folder) and the environment variable that moves
 * them. Only the folder moves: the manifest that pins sizes and digests is always the one shipped with camveil.
 */
const PLACES: Readonly<Record<ModelNet, { package: string; directory: string; env: string }>> = {
  faces: { package: '@vladmandic/face-api', directory: 'model', env: 'CAMVEIL_FACE_MODEL_DIR' },
  objects: { package: '@vladmandic/human', directory: 'models', env: 'CAMVEIL_OBJECT_MODEL_DIR' },
};

/**
 * An installed package's root folder. Found from its package.json when the package exports it, else by
 * walking up from its entry point to the folder whose package.json bears its name (`@vladmandic/human`
 * exports no package.json).
 */
function packageRoot(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    let dir = dirname(require.resolve(name));
    for (;;) {
      const manifest = join(dir, 'package.json');
      if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === name) return dir;
      const up = dirname(dir);
      if (up === dir) throw new Error(`no package.json named ${name} above ${require.resolve(name)}`);
      dir = up;
    }
  }
}

const defaults = new Map<ModelNet, string>();

/** The folder of the npm package that ships the net's files: what models/manifest.json pins. */
export function defaultModelDir(net: ModelNet): string {
  let dir = defaults.get(net);
  if (dir === undefined) {
    dir = join(packageRoot(PLACES[net].package), PLACES[net].directory);
    defaults.set(net, dir);
  }
  return dir;
}

/** The environment variable that moves a net's model folder: `CAMVEIL_FACE_MODEL_DIR`, `CAMVEIL_OBJECT_MODEL_DIR`. */
export function modelDirVariable(net: ModelNet): string {
  return PLACES[net].env;
}

/**
 * Where a net's model files are read from: its environment variable when set (a hub that keeps its models
 * elsewhere, and the tests that tamper with a copy), else the package's folder.
 */
export function modelDir(net: ModelNet, env: NodeJS.ProcessEnv = process.env): string {
  const dir = env[PLACES[net].env];
  return dir === undefined || dir === '' ? defaultModelDir(net) : dir;
}

/** `src/analysis/` and `dist/analysis/` both sit two levels below the package root. */
export const DEFAULT_MANIFEST_PATH = fileURLToPath(new URL('../../models/manifest.json', import.meta.url));

const fileSchema = z.strictObject({
  // A bare file name: the manifest must not point outside the model folder.
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a bare file name').refine((n) => n !== '.' && n !== '..', 'a bare file name'),
  role: z.string().min(1),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
});

const netSchema = z.strictObject({
  source: z.strictObject({
    package: z.string().min(1),
    version: z.string().min(1),
    directory: z.string().min(1),
    license: z.string().min(1),
  }),
  files: z.array(fileSchema).min(1),
});

const manifestSchema = z.strictObject({
  description: z.string().optional(),
  nets: z.strictObject({ faces: netSchema, objects: netSchema }),
});

export type ModelManifest = z.infer<typeof manifestSchema>;

/** The pinned model files of one net, read once and checked: the net loads these very bytes, never the disk again. */
export interface VerifiedModels {
  net: ModelNet;
  dir: string;
  /** File name → its verified content. */
  files: ReadonlyMap<string, Buffer>;
}

async function readManifest(manifestPath: string): Promise<ModelManifest> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_MODEL_INVALID', `model manifest ${manifestPath} cannot be read or parsed: ${(error as Error).message}`, {
      where: manifestPath,
      cause: error,
    });
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new CamveilError('CAMVEIL_E_MODEL_INVALID', `model manifest ${manifestPath} is invalid:\n${issues.map((i) => `  ${i}`).join('\n')}`, {
      where: manifestPath,
    });
  }
  for (const net of MODEL_NETS) {
    const names = parsed.data.nets[net].files.map((f) => f.name);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate !== undefined) {
      throw new CamveilError('CAMVEIL_E_MODEL_INVALID', `model manifest ${manifestPath} lists ${duplicate} twice under nets.${net}`, { where: manifestPath });
    }
  }
  return parsed.data;
}

/**
 * Reads every file models/manifest.json lists for `net` from `dir` (default: modelDir(net)) and checks its
 * size and SHA-256.
 *
 * Throws `CAMVEIL_E_MODEL_INVALID` naming the file and what differs (missing, size, digest) — every
 * problem at once — or when the manifest itself does not pass validation.
 */
export async function verifyModels(net: ModelNet, dir: string = modelDir(net), manifestPath: string = DEFAULT_MANIFEST_PATH): Promise<VerifiedModels> {
  const manifest = await readManifest(manifestPath);
  const files = new Map<string, Buffer>();
  const problems: string[] = [];
  for (const entry of manifest.nets[net].files) {
    const file = join(dir, entry.name);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      problems.push(`${entry.name}: missing or unreadable (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      continue;
    }
    if (bytes.length !== entry.bytes) {
      problems.push(`${entry.name}: size ${bytes.length} bytes, manifest says ${entry.bytes}`);
      continue;
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== entry.sha256) {
      problems.push(`${entry.name}: SHA-256 ${digest}, manifest says ${entry.sha256}`);
      continue;
    }
    files.set(entry.name, bytes);
  }
  if (problems.length > 0) {
    const label = net === 'faces' ? 'face' : 'object';
    throw new CamveilError('CAMVEIL_E_MODEL_INVALID', `${label} model files in ${dir} do not match ${manifestPath}:\n${problems.map((p) => `  ${p}`).join('\n')}`, {
      where: dir,
    });
  }
  return { net, dir, files };
}
