import { z } from 'zod';

/**
 * S3 bucket names as AWS defines them for new buckets (other stores accept a subset of what AWS accepts):
 * 3-63 characters of lower-case letters, digits, dots and hyphens, starting and ending with a letter or
 * digit, no `..`, not shaped like an IP address. The hub's config and `camveil receiver --s3-bucket` both
 * check with it.
 */
export const bucketNameSchema = z
  .string()
  .min(3, 'must be 3 to 63 characters')
  .max(63, 'must be 3 to 63 characters')
  .regex(/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/, 'must be lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit')
  .refine((name) => !name.includes('..'), 'must not hold two dots in a row')
  .refine((name) => !/^\d{1,3}(\.\d{1,3}){3}$/.test(name), 'must not be shaped like an IP address');

/** A signing region such as `us-east-1` (`auto` for R2). */
export const regionSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a region name such as us-east-1 (lower-case letters, digits and hyphens)');

/** A key prefix: path segments of safe characters, single slashes, none leading or trailing, no `.`/`..` segment. */
export const keyPrefixSchema = z
  .string()
  .max(512, 'must be at most 512 characters')
  .regex(/^[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*$/, "must be path segments of letters, digits and !_.*'()- joined by single slashes, with no leading or trailing slash")
  .refine((prefix) => !prefix.split('/').some((segment) => segment === '.' || segment === '..'), 'must not hold . or .. segments');
