/**
 * Fixed-size padding for what the hub seals for the app (events and the state), so the length of the
 * ciphertext the broker sees does not tell a known face from motion or from a dummy event.
 *
 * The plaintext is JSON followed by spaces up to the smallest bucket it fits in: JSON.parse ignores trailing
 * whitespace, so the reader needs no framing. Past the largest bucket it grows in whole multiples of it.
 */
export const PADDING_BUCKETS: readonly number[] = [1024, 4096, 16384, 65536];

/** The padded size for `length` plaintext bytes. */
export function paddedSize(length: number): number {
  for (const bucket of PADDING_BUCKETS) if (length <= bucket) return bucket;
  const largest = PADDING_BUCKETS[PADDING_BUCKETS.length - 1]!;
  return Math.ceil(length / largest) * largest;
}

/** `value` as JSON, padded with spaces to its bucket. */
export function padJson(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const padded = Buffer.alloc(paddedSize(json.length), 0x20);
  json.copy(padded);
  return padded;
}
