import type { z } from 'zod';
import { CamveilError } from '../errors.js';
import { parseS3Credentials } from '../s3/s3-credentials.js';
import { bucketNameSchema, keyPrefixSchema, regionSchema } from '../s3/s3-names.js';
import { validateEndpoint } from '../uplink/endpoint.js';
import { S3Storage } from './s3-storage.js';
import { readPrivateText } from './tokens.js';

/** The `camveil receiver` options that choose where objects go (see src/cli/receiver.ts). */
export interface StorageCliOptions {
  dir?: string;
  s3?: boolean;
  s3Endpoint?: string;
  s3Region?: string;
  s3Bucket?: string;
  s3Prefix?: string;
  s3PathStyle?: boolean;
  s3Credentials?: string;
  presign?: boolean;
  presignExpiry?: number;
}

export const DEFAULT_PRESIGN_EXPIRY_SECONDS = 300;


const usage = (message: string) => new CamveilError('CAMVEIL_E_USAGE', message, { where: 'receiver' });

/**
 * Checks the storage options as a whole: `--dir` or `--s3` (not both); `--s3` needs region, bucket and a
 * credentials file; the other `--s3-*` options and `--presign` only with `--s3`; `--presign-expiry` only
 * with `--presign`. Returns the presign expiry in seconds when presigning.
 *
 * @throws CamveilError `CAMVEIL_E_USAGE` naming the option.
 */
export function checkStorageOptions(opts: StorageCliOptions): { presignExpirySeconds?: number } {
  const s3Only = (['s3Endpoint', 's3Region', 's3Bucket', 's3Prefix', 's3PathStyle', 's3Credentials', 'presign'] as const).filter((k) => opts[k] !== undefined);
  if (opts.s3 !== true) {
    if (s3Only.length > 0) throw usage(`${s3Only.map(flag).join(', ')}: only with --s3`);
    if (opts.presignExpiry !== undefined) throw usage('--presign-expiry: only with --s3 --presign');
    if (opts.dir === undefined) throw usage('receiver needs --dir DIR or --s3');
    return {};
  }
  if (opts.dir !== undefined) throw usage('give --dir or --s3, not both');
  const missing = (['s3Region', 's3Bucket', 's3Credentials'] as const).filter((k) => opts[k] === undefined);
  if (missing.length > 0) throw usage(`--s3 needs ${missing.map(flag).join(', ')}`);
  checkName(bucketNameSchema, opts.s3Bucket, '--s3-bucket');
  if (opts.s3Prefix !== undefined) checkName(keyPrefixSchema, opts.s3Prefix, '--s3-prefix');
  checkName(regionSchema, opts.s3Region, '--s3-region');
  if (opts.s3Endpoint !== undefined) {
    try {
      validateEndpoint(opts.s3Endpoint, '--s3-endpoint');
    } catch (error) {
      throw usage(error instanceof Error ? error.message : String(error));
    }
  }
  if (opts.presign !== true) {
    if (opts.presignExpiry !== undefined) throw usage('--presign-expiry: only with --presign');
    return {};
  }
  const expiry = opts.presignExpiry ?? DEFAULT_PRESIGN_EXPIRY_SECONDS;
  if (!Number.isInteger(expiry) || expiry > 3600) throw usage('--presign-expiry must be a whole number of seconds from 1 to 3600');
  return { presignExpirySeconds: expiry };
}

/**
 * The bucket storage the options name, its credentials read from a private file (mode 0600, owned by the
 * user, as the tokens file), and the bucket checked (HeadBucket).
 *
 * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` for the credentials file; those of S3Storage.check.
 */
export async function openS3Storage(opts: StorageCliOptions): Promise<S3Storage> {
  const file = opts.s3Credentials ?? '';
  const credentials = parseS3Credentials(await readPrivateText(file, 'S3 credentials file'), file);
  const storage = new S3Storage({
    ...(opts.s3Endpoint === undefined ? {} : { endpoint: opts.s3Endpoint }),
    region: opts.s3Region ?? '',
    bucket: opts.s3Bucket ?? '',
    ...(opts.s3Prefix === undefined ? {} : { prefix: opts.s3Prefix }),
    forcePathStyle: opts.s3PathStyle === true,
    credentials,
  });
  try {
    await storage.check();
  } catch (error) {
    await storage.close();
    throw error;
  }
  return storage;
}

/** The same rules as the hub's config (src/s3/s3-names.ts), said of the option. */
function checkName(schema: z.ZodType<string>, value: string | undefined, option: string): void {
  const parsed = schema.safeParse(value ?? '');
  if (!parsed.success) throw usage(`${option} "${value ?? ''}" ${parsed.error.issues.map((i) => i.message).join('; ')}`);
}

function flag(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}
