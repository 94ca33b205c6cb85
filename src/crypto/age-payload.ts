import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';

/**
 * The age v1 payload (STREAM, https://age-encryption.org/v1#payload) on node:crypto's ChaCha20-Poly1305.
 * typage's payload code runs the cipher in pure JavaScript; OpenSSL's is several times faster, and the
 * bytes are identical (the interop tests prove it against typage and the age CLI).
 */

/** Plaintext bytes per STREAM chunk. */
export const CHUNK_SIZE = 64 * 1024;
/** Poly1305 tag length. */
export const TAG_SIZE = 16;
/** Ciphertext bytes of a full chunk. */
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
/** Length of the random nonce between the header and the payload. */
export const PAYLOAD_NONCE_SIZE = 16;

/** payload key = HKDF-SHA256(ikm = file key, salt = payload nonce, info = "payload"). */
export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

/**
 * The 12-byte STREAM nonce: an 11-byte big-endian chunk counter, then 0x01 on the final chunk, else 0x00.
 */
export class ChunkCounter {
  readonly #nonce = Buffer.alloc(12);
  #finished = false;

  /** The nonce for the next chunk; afterwards the counter has moved on. */
  next(last: boolean): Buffer {
    if (this.#finished) throw new Error('STREAM: a chunk after the final chunk');
    const nonce = Buffer.from(this.#nonce);
    if (last) {
      nonce[11] = 1;
      this.#finished = true;
      return nonce;
    }
    for (let i = 10; i >= 0; i--) {
      this.#nonce[i] = (this.#nonce[i]! + 1) & 0xff;
      if (this.#nonce[i] !== 0) return nonce;
    }
    // 2^88 chunks of 64 KiB: unreachable, but a wrapped counter would reuse nonces, so refuse.
    throw new Error('STREAM: chunk counter overflow');
  }
}

/** Encrypts one chunk; returns ciphertext and tag as two buffers to spare a 64 KiB copy. */
export function sealChunk(key: Buffer, nonce: Buffer, plaintext: Buffer): [Buffer, Buffer] {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_SIZE });
  const body = cipher.update(plaintext);
  cipher.final();
  return [body, cipher.getAuthTag()];
}

/**
 * Decrypts and authenticates one chunk (ciphertext || tag). Returns plaintext only after the tag has
 * been checked, so unauthenticated bytes never leave this function.
 *
 * @throws Error when the chunk is too short or fails authentication.
 */
export function openChunk(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer {
  if (sealed.length < TAG_SIZE) throw new Error('STREAM: truncated chunk');
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_SIZE });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const body = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    decipher.final();
  } catch {
    body.fill(0);
    throw new Error('STREAM: chunk failed authentication');
  }
  return body;
}
