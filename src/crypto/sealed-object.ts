import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { CamveilError } from '../errors.js';
import { collect, decryptStream, encryptStream, type ByteSource } from './age-stream.js';
import { base32 } from './base32.js';
import { ByteQueue, toBuffer } from './byte-queue.js';
import { manifestProblems, type Manifest } from './manifest.js';

/**
 * A sealed object is one age file whose plaintext is
 *   4-byte big-endian manifest length || UTF-8 JSON manifest || body bytes.
 * The length prefix lets a reader take the manifest without scanning the body; the body is streamed.
 */

/** Manifests are a few hundred bytes; a larger length field means a damaged or foreign object. */
export const MAX_MANIFEST_SIZE = 64 * 1024;

/** A fresh object id: 16 random bytes (128 bits, so ids never collide in practice) in base32. */
export function newObjectId(): string {
  return base32(randomBytes(16));
}

/**
 * Seals a manifest and a body to the household recipients, as a stream of an age file.
 *
 * @throws CamveilError `CAMVEIL_E_MANIFEST_INVALID` (every problem as `path: reason`) or
 * `CAMVEIL_E_KEY_INVALID`, synchronously.
 */
export function sealObject(recipients: readonly string[], manifest: Manifest, body: ByteSource): Readable {
  const problems = manifestProblems(manifest);
  if (problems.length > 0) throw invalid(problems);
  const json = Buffer.from(JSON.stringify(manifest), 'utf8');
  if (json.length > MAX_MANIFEST_SIZE) throw invalid([`(manifest): ${json.length} bytes, more than ${MAX_MANIFEST_SIZE}`]);
  const prefix = Buffer.allocUnsafe(4 + json.length);
  prefix.writeUInt32BE(json.length, 0);
  json.copy(prefix, 4);
  return encryptStream(recipients, withPrefix(prefix, body));
}

async function* withPrefix(prefix: Buffer, body: ByteSource): AsyncGenerator<Uint8Array> {
  yield prefix;
  if (body instanceof Uint8Array) yield body;
  else yield* body as AsyncIterable<Uint8Array>;
}

/**
 * Opens a sealed object: resolves once the manifest has been decrypted and validated; the body is then
 * streamed. As with decryptStream, the body is authenticated chunk by chunk and a truncated object
 * makes the body stream error at its end.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID`, `CAMVEIL_E_DECRYPT_FAILED` or `CAMVEIL_E_MANIFEST_INVALID`.
 */
export async function openObject(
  identities: string | readonly string[],
  sealed: ByteSource,
): Promise<{ manifest: Manifest; body: Readable }> {
  const plaintext = decryptStream(identities, sealed);
  const iterator = (plaintext as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const queue = new ByteQueue();
  try {
    await fill(iterator, queue, 4);
    const length = queue.take(4).readUInt32BE(0);
    if (length > MAX_MANIFEST_SIZE) throw invalid([`(manifest): length field ${length} exceeds ${MAX_MANIFEST_SIZE}`]);
    await fill(iterator, queue, length);
    const manifest = parseManifest(queue.take(length));
    const head = queue.takeAll();
    return { manifest, body: Readable.from(rest(head, iterator), { objectMode: false }) };
  } catch (error) {
    plaintext.destroy();
    throw error;
  }
}

/** openObject for objects held in memory (events, snapshots): the body as one buffer. */
export async function openObjectToBuffer(
  identities: string | readonly string[],
  sealed: ByteSource,
): Promise<{ manifest: Manifest; body: Buffer }> {
  const { manifest, body } = await openObject(identities, sealed);
  return { manifest, body: await collect(body) };
}

async function fill(iterator: AsyncIterator<Buffer>, queue: ByteQueue, n: number): Promise<void> {
  while (queue.length < n) {
    const next = await iterator.next();
    if (next.done === true) throw invalid(['(manifest): object ends inside the manifest']);
    queue.push(toBuffer(next.value));
  }
}

async function* rest(head: Buffer, iterator: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  try {
    if (head.length > 0) yield head;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

function parseManifest(bytes: Buffer): Manifest {
  let candidate: unknown;
  try {
    candidate = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw invalid(['(manifest): not UTF-8 JSON']);
  }
  const problems = manifestProblems(candidate);
  if (problems.length > 0) throw invalid(problems);
  return candidate as Manifest;
}

function invalid(problems: readonly string[]): CamveilError {
  return new CamveilError('CAMVEIL_E_MANIFEST_INVALID', `sealed object manifest: ${problems.join('; ')}`, { where: 'manifest' });
}
