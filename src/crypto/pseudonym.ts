import { createHmac } from 'node:crypto';
import { base32 } from './base32.js';

/** Secrets shorter than this could be brute-forced from pseudonyms of guessable values. */
export const MIN_PSEUDONYM_SECRET_SIZE = 32;

/** Pseudonym bytes kept: 80 bits, shown as 16 base32 characters. */
const PSEUDONYM_BYTES = 10;

const KIND_PATTERN = /^[a-z][a-z0-9]{1,15}$/;

/**
 * A stable, short, keyed pseudonym such as `cam_5q2jxk7ymd3aqv4e`: the first 10 bytes of
 * HMAC-SHA256(secret, kind || 0x00 || value) in base32, prefixed by the kind.
 *
 * Domain separation: `kind` is part of the MAC input and cannot contain the 0x00 separator, so a camera
 * and a device with the same underlying value get unrelated pseudonyms.
 *
 * Collisions: 80 bits means two values of one kind collide with probability about n²/2^81; for the
 * thousands of cameras, devices or people a hub will ever see that is below 10^-17, so pseudonyms can be
 * used as keys. They are not a secret-keeping measure by themselves: values like serial numbers are
 * guessable, so the secret must stay on the hub (it is never logged or uploaded).
 *
 * @throws RangeError when `kind` is not 2–16 lower-case letters/digits or the secret is too short.
 */
export function pseudonym(secret: Buffer, kind: string, value: string): string {
  if (!KIND_PATTERN.test(kind)) throw new RangeError(`pseudonym kind must match ${String(KIND_PATTERN)}`);
  if (secret.length < MIN_PSEUDONYM_SECRET_SIZE) {
    throw new RangeError(`pseudonym secret must be at least ${MIN_PSEUDONYM_SECRET_SIZE} bytes`);
  }
  const mac = createHmac('sha256', secret).update(`${kind}\0${value}`, 'utf8').digest();
  return `${kind}_${base32(mac.subarray(0, PSEUDONYM_BYTES))}`;
}
