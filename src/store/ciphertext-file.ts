import { open, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { CamveilError } from '../errors.js';

/** The first line of every binary age v1 file (https://age-encryption.org/v1). */
export const AGE_MAGIC = Buffer.from('age-encryption.org/v1\n', 'latin1');

/**
 * Writes `body` to a new file `path` (mode 0600; fails if it exists) and fsyncs it. Pulls one chunk at a time,
 * so memory stays at one chunk whatever the length (backpressure). Refuses a body whose first bytes are not
 * the age v1 magic line, as soon as they are known: a defence in depth so that plaintext can never land on
 * disk through a caller's mistake. On any failure the file is removed and the body destroyed.
 *
 * @returns the number of bytes written.
 * @throws CamveilError `CAMVEIL_E_STORE_NOT_CIPHERTEXT` for non-age bytes, `CAMVEIL_E_STORE_QUOTA` when the
 * body grows past `maxBytes`, `CAMVEIL_E_STORE_WRITE_FAILED` when the body errors, ends early or the disk fails.
 */
export async function writeCiphertextFile(body: Readable, path: string, objectId: string, maxBytes: number): Promise<number> {
  let bytes = 0;
  const head = Buffer.alloc(AGE_MAGIC.length);
  let file;
  try {
    file = await open(path, 'wx', 0o600);
    for await (const chunk of body) {
      if (!(chunk instanceof Uint8Array)) throw notCiphertext(objectId, 'the body stream is in string or object mode');
      if (bytes < AGE_MAGIC.length) {
        const copied = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).copy(head, bytes);
        if (!head.subarray(0, bytes + copied).equals(AGE_MAGIC.subarray(0, bytes + copied))) {
          throw notCiphertext(objectId, 'the body does not start with an age v1 header');
        }
      }
      bytes += chunk.byteLength;
      if (bytes > maxBytes) {
        throw new CamveilError('CAMVEIL_E_STORE_QUOTA', `object ${objectId} is larger than the store quota (${maxBytes} bytes)`, {
          where: objectId,
        });
      }
      let offset = 0;
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await file.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
    }
    if (bytes < AGE_MAGIC.length) throw notCiphertext(objectId, `the body is only ${bytes} bytes long`);
    await file.sync();
    await file.close();
    file = undefined;
    return bytes;
  } catch (error) {
    // Leaving the loop by a throw already destroys the body; a failure of open or sync must too.
    body.destroy();
    if (file !== undefined) {
      // Only a file this call created is removed: `wx` failing means the name belongs to someone else.
      await file.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
    }
    if (error instanceof CamveilError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new CamveilError('CAMVEIL_E_STORE_WRITE_FAILED', `object ${objectId} was not stored: ${reason}`, { where: objectId, cause: error });
  }
}

function notCiphertext(objectId: string, why: string): CamveilError {
  return new CamveilError('CAMVEIL_E_STORE_NOT_CIPHERTEXT', `object ${objectId} was refused: ${why}`, { where: objectId });
}

/** Makes a rename or unlink in `dir` durable (POSIX: the entry lives in the directory, not the file). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
