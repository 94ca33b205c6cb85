import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { CamveilError } from '../errors.js';
import { createHeader, headerEnd, MAX_HEADER_SIZE, openHeader } from './age-header.js';
import {
  CHUNK_SIZE,
  ChunkCounter,
  openChunk,
  PAYLOAD_NONCE_SIZE,
  payloadKey,
  SEALED_CHUNK_SIZE,
  sealChunk,
} from './age-payload.js';
import { ByteQueue, toBuffer } from './byte-queue.js';
import { decrypterFor } from './identities.js';
import { parseRecipients } from './recipients.js';

/**
 * Bytes: one buffer, a Node Readable (binary, not in string mode), or any (async) iterable of byte chunks.
 */
export type ByteSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Readable;

/** The chunks of a source, as one async iterable. */
function chunksOf(source: ByteSource): AsyncIterable<unknown> {
  if (source instanceof Uint8Array) return Readable.from([source], { objectMode: true });
  if (Symbol.asyncIterator in source) return source as AsyncIterable<unknown>;
  return Readable.from(source, { objectMode: true });
}

/**
 * How many bytes an output stream buffers before it stops pulling from its source: with a 64 KiB chunk
 * and this, one encryption holds at most ~0.5 MiB whatever the file length.
 */
const OUTPUT_HIGH_WATER_MARK = 4 * CHUNK_SIZE;

/**
 * Encrypts `plaintext` to `recipients` as a standard age v1 file (binary, not armored), as a stream.
 *
 * The returned Readable pulls from `plaintext` only as fast as it is read (backpressure), holds at most
 * one 64 KiB chunk of plaintext plus its output buffer, and writes nothing anywhere. The header comes from
 * typage's recipient code; the payload is STREAM on node:crypto (see age-payload.ts). Destroying the
 * output stops reading the source (and destroys it when it is a Readable).
 *
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID` synchronously when a recipient is bad or none is given.
 * The stream errors if the source errors.
 */
export function encryptStream(recipients: readonly string[], plaintext: ByteSource): Readable {
  const valid = parseRecipients(recipients);
  return Readable.from(encryptChunks(valid, plaintext), { objectMode: false, highWaterMark: OUTPUT_HIGH_WATER_MARK });
}

/** Encrypts a whole buffer; for small objects (events, snapshots) and tests. */
export async function encryptToBuffer(recipients: readonly string[], plaintext: Uint8Array): Promise<Buffer> {
  return collect(encryptStream(recipients, plaintext));
}

async function* encryptChunks(recipients: readonly string[], source: ByteSource): AsyncGenerator<Buffer> {
  const { header, fileKey } = await createHeader(recipients);
  const nonce = randomBytes(PAYLOAD_NONCE_SIZE);
  const key = payloadKey(fileKey, nonce);
  fileKey.fill(0);
  const pending = Buffer.allocUnsafe(CHUNK_SIZE);
  try {
    yield Buffer.concat([header, nonce]);
    const counter = new ChunkCounter();
    let used = 0;
    for await (const piece of chunksOf(source)) {
      let rest = asBytes(piece);
      while (rest.length > 0) {
        // A full chunk is sealed only once more bytes are known to follow: the last one needs the flag.
        if (used === CHUNK_SIZE) {
          yield* sealChunk(key, counter.next(false), pending);
          used = 0;
        }
        if (used === 0 && rest.length > CHUNK_SIZE) {
          // Large source chunks are sealed in place, without copying through `pending`.
          yield* sealChunk(key, counter.next(false), rest.subarray(0, CHUNK_SIZE));
          rest = rest.subarray(CHUNK_SIZE);
          continue;
        }
        const n = Math.min(CHUNK_SIZE - used, rest.length);
        rest.copy(pending, used, 0, n);
        used += n;
        rest = rest.subarray(n);
      }
    }
    // Empty only when the whole payload is empty, as the format requires.
    yield* sealChunk(key, counter.next(true), pending.subarray(0, used));
  } finally {
    key.fill(0);
    pending.fill(0);
  }
}

/**
 * Decrypts an age v1 file as a stream. Only authenticated plaintext is emitted: each 64 KiB chunk is
 * checked before it is pushed, and a truncated file fails at its end (so a consumer must treat data as
 * provisional until the stream ends without error, as with any streaming AEAD).
 *
 * @param identities - `AGE-SECRET-KEY-1…` and/or `AGE-SECRET-KEY-PQ-1…` strings.
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID` synchronously for a malformed identity (never quoting it).
 * The stream errors with `CAMVEIL_E_DECRYPT_FAILED` when no identity matches, the header is invalid or
 * the payload is corrupted or truncated.
 */
export function decryptStream(identities: string | readonly string[], ciphertext: ByteSource): Readable {
  const decrypter = decrypterFor(identities);
  return Readable.from(decryptChunks(decrypter, ciphertext), { objectMode: false, highWaterMark: OUTPUT_HIGH_WATER_MARK });
}

/** Decrypts a whole age file held in memory. */
export async function decryptToBuffer(identities: string | readonly string[], ciphertext: Uint8Array): Promise<Buffer> {
  return collect(decryptStream(identities, ciphertext));
}

async function* decryptChunks(decrypter: ReturnType<typeof decrypterFor>, source: ByteSource): AsyncGenerator<Buffer> {
  const iterator = chunksOf(source)[Symbol.asyncIterator]();
  const queue = new ByteQueue();
  let key: Buffer | undefined;
  try {
    const header = await readHeader(iterator, queue);
    const fileKey = await openHeader(decrypter, header);
    while (queue.length < PAYLOAD_NONCE_SIZE) {
      const next = await iterator.next();
      if (next.done === true) throw failed('file ends before the payload nonce');
      queue.push(asBytes(next.value));
    }
    key = payloadKey(fileKey, queue.take(PAYLOAD_NONCE_SIZE));
    fileKey.fill(0);
    const counter = new ChunkCounter();
    let first = true;
    for (;;) {
      // A chunk is known not to be the last one only when more bytes follow it.
      while (queue.length > SEALED_CHUNK_SIZE) {
        yield openOrFail(key, counter.next(false), queue.take(SEALED_CHUNK_SIZE));
        first = false;
      }
      const next = await iterator.next();
      if (next.done === true) break;
      queue.push(asBytes(next.value));
    }
    const last = openOrFail(key, counter.next(true), queue.takeAll());
    if (last.length === 0 && !first) throw failed('final chunk is empty');
    yield last;
  } finally {
    key?.fill(0);
    await iterator.return?.();
  }
}

/** Reads bytes until the header's MAC line is complete; leaves what follows it in `queue`. */
async function readHeader(iterator: AsyncIterator<unknown>, queue: ByteQueue): Promise<Buffer> {
  // A growable buffer (capacity doubles) keeps tiny source chunks from making this quadratic; only the
  // first MAX_HEADER_SIZE + 1 bytes are ever copied, so a file arriving as one big chunk is not.
  let buffer = Buffer.allocUnsafe(4096);
  let size = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) throw failed(size === 0 ? 'empty file' : 'file ends inside the header');
    const chunk = asBytes(next.value);
    const copied = Math.min(chunk.length, MAX_HEADER_SIZE + 1 - size);
    if (size + copied > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(buffer.length * 2, size + copied));
      buffer.copy(grown, 0, 0, size);
      buffer = grown;
    }
    chunk.copy(buffer, size, 0, copied);
    const scanFrom = size;
    size += copied;
    const end = headerEnd(buffer.subarray(0, size), scanFrom);
    if (end !== -1) {
      queue.push(Buffer.from(buffer.subarray(end, size)));
      queue.push(chunk.subarray(copied));
      return Buffer.from(buffer.subarray(0, end));
    }
    if (size > MAX_HEADER_SIZE) throw failed(`no header end within ${MAX_HEADER_SIZE} bytes`);
  }
}

function openOrFail(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer {
  try {
    return openChunk(key, nonce, sealed);
  } catch (error) {
    throw failed(`payload: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function failed(reason: string): CamveilError {
  return new CamveilError('CAMVEIL_E_DECRYPT_FAILED', `age file: ${reason}`, { where: 'age payload' });
}

function asBytes(chunk: unknown): Buffer {
  if (chunk instanceof Uint8Array) return toBuffer(chunk);
  // A Readable with setEncoding() yields strings: re-encoding them could silently change the bytes.
  throw new TypeError(`expected byte chunks, got ${typeof chunk}`);
}

/** Reads a stream to the end into one buffer. */
export async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}
