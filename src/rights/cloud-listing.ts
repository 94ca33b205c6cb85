import type { Config } from '../config/schema.js';
import { CamveilError } from '../errors.js';
import { remoteStoreFor } from '../uplink/remote-store-factory.js';

/** How long the export waits for the cloud's listing before saying it is unavailable. */
const LISTING_TIMEOUT_MS = 10_000;

/** One line of an export's `cloud` section: an object the cloud holds for this hub, or why it could not say. */
export type CloudListingLine =
  | { section: 'cloud'; objectId: string; bytes: number; storedAt?: string }
  | { section: 'cloud'; unavailable: string };

/**
 * What the household's cloud store (the receiver, or an S3 bucket) holds for this hub, for the household's
 * export: each object's id, size and time (the objects themselves are ciphertext sealed to the household).
 * Nothing when uploads are off; one `unavailable` line with the error code when the store cannot be asked
 * (offline, refused, credentials unreadable), so an export never fails for the cloud's sake.
 */
export async function cloudListing(config: Config, hubPseudonym: string): Promise<CloudListingLine[]> {
  let link;
  try {
    link = remoteStoreFor(config, hubPseudonym);
  } catch (error) {
    return [{ section: 'cloud', unavailable: codeOf(error) }];
  }
  if (link === undefined) return [];
  try {
    const listing = await link.remote.list(AbortSignal.timeout(LISTING_TIMEOUT_MS));
    return listing.map((o) => ({ section: 'cloud', objectId: o.objectId, bytes: o.bytes, ...(o.storedAt === undefined ? {} : { storedAt: o.storedAt }) }));
  } catch (error) {
    return [{ section: 'cloud', unavailable: codeOf(error) }];
  } finally {
    link.remote.close?.();
  }
}

function codeOf(error: unknown): string {
  return error instanceof CamveilError ? error.code : 'CAMVEIL_E_UPLOAD_FAILED';
}
