import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CamveilError } from '../../errors.js';

const require = createRequire(import.meta.url);

/** The face-api package's own model folder: the files models/manifest.json pins. */
export const DEFAULT_MODEL_DIR = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');

/**
 * Where the model files are read from: `CAMVEIL_FACE_MODEL_DIR` when set (a hub that keeps its models
 * elsewhere, and the tests that tamper with a copy), else the package's folder. Only the folder moves: the
 * manifest that pins sizes and digests is always the one shipped with camveil.
 */
export function modelDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.CAMVEIL_FACE_MODEL_DIR;
  return dir === undefined || dir === '' ? DEFAULT_MODEL_DIR : dir;
}

/** `src/analysis/faces/` and `dist/analysis/faces/` both sit three levels below the package root. */
export const DEFAULT_MANIFEST_PATH = fileURLToPath(new URL('../../../models/manifest.json', import.meta.url));

const manifestSchema = z.strictObject({
  description: z.string().optional(),
  source: z.strictObject({
    package: z.string().min(1),
    version: z.string().min(1),
    directory: z.string().min(1),
    license: z.string().min(1),
  }),
  files: z
    .array(
      z.strictObject({
        // A bare file name: the manifest must not point outside the model folder.
        name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a bare file name').refine((n) => n !== '.' && n !== '..', 'a bare file name'),
        role: z.string().min(1),
        bytes: z.number().int().nonnegative(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
      }),
    )
    .min(1),
});

export type ModelManifest = z.infer<typeof manifestSchema>;

/** The pinned model files, read once and checked: the engine loads these very bytes, never the disk again. */
export interface VerifiedModels {
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
  const names = parsed.data.files.map((f) => f.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) {
    throw new CamveilError('CAMVEIL_E_MODEL_INVALID', `model manifest ${manifestPath} lists ${duplicate} twice`, { where: manifestPath });
  }
  return parsed.data;
}

/**
 * Reads every file models/manifest.json lists from `dir` and checks its size and SHA-256.
 *
 * Throws `CAMVEIL_E_MODEL_INVALID` naming the file and what differs (missing, size, digest) — every
 * problem at once — or when the manifest itself does not pass validation.
 */
export async function verifyModels(dir: string = modelDir(), manifestPath: string = DEFAULT_MANIFEST_PATH): Promise<VerifiedModels> {
  const manifest = await readManifest(manifestPath);
  const files = new Map<string, Buffer>();
  const problems: string[] = [];
  for (const entry of manifest.files) {
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
    throw new CamveilError('CAMVEIL_E_MODEL_INVALID', `face model files in ${dir} do not match ${manifestPath}:\n${problems.map((p) => `  ${p}`).join('\n')}`, {
      where: dir,
    });
  }
  return { dir, files };
}
