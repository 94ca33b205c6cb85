import { Encrypter, type Decrypter, type Recipient, type Stanza } from 'age-encryption';
import { CamveilError } from '../errors.js';
import { PAYLOAD_NONCE_SIZE, TAG_SIZE } from './age-payload.js';
import { parseRecipients } from './recipients.js';

/** Headers larger than this are refused before parsing: a few hundred post-quantum stanzas fit. */
export const MAX_HEADER_SIZE = 1024 * 1024;

/**
 * A Recipient that wraps nothing and keeps the file key it is shown. typage exposes no way to pass a
 * file key in or get one out, but it calls every recipient's `wrapFileKey` with the file key it drew.
 */
class FileKeyTap implements Recipient {
  fileKey: Buffer | undefined;

  wrapFileKey(fileKey: Uint8Array): Stanza[] {
    this.fileKey = Buffer.from(fileKey);
    return [];
  }
}

/**
 * Builds an age v1 header for `recipients` with typage's own recipient code, header encoding and MAC,
 * and returns it with the file key so the payload can be encrypted outside typage.
 *
 * It encrypts an empty file with typage and keeps the header: the output is header || 16-byte nonce ||
 * the 16-byte tag of the empty final chunk. That throwaway nonce and chunk never leave this function.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID` when a recipient is bad.
 */
export async function createHeader(recipients: readonly string[]): Promise<{ header: Buffer; fileKey: Buffer }> {
  const valid = parseRecipients(recipients);
  const tap = new FileKeyTap();
  const encrypter = new Encrypter();
  encrypter.addRecipient(tap);
  for (const r of valid) encrypter.addRecipient(r);
  const empty = await encrypter.encrypt(new Uint8Array(0));
  const header = Buffer.from(empty.subarray(0, empty.length - PAYLOAD_NONCE_SIZE - TAG_SIZE));
  if (tap.fileKey === undefined || headerEnd(header, 0) !== header.length) {
    throw new CamveilError('CAMVEIL_E_INTERNAL', 'age header: typage output does not have the expected layout', { where: 'crypto' });
  }
  return { header, fileKey: tap.fileKey };
}

/**
 * Scans for the end of an age header: the byte after the newline that ends the `---` MAC line. Stanza
 * lines start with `-> ` and bodies are base64, so the first line starting with `---` is the MAC line.
 *
 * @param scanFrom - bytes of `bytes` already scanned (the scan restarts at the line holding that byte).
 * @returns the header length, or -1 when the MAC line has not been seen complete yet.
 */
export function headerEnd(bytes: Buffer, scanFrom: number): number {
  let lineStart = scanFrom === 0 ? 0 : bytes.lastIndexOf(0x0a, scanFrom - 1) + 1;
  for (;;) {
    const newline = bytes.indexOf(0x0a, lineStart);
    if (newline === -1) return -1;
    if (bytes[lineStart] === 0x2d && bytes[lineStart + 1] === 0x2d && bytes[lineStart + 2] === 0x2d) return newline + 1;
    lineStart = newline + 1;
  }
}

/**
 * Checks the header MAC and unwraps the file key with typage's identity code.
 *
 * @throws CamveilError `CAMVEIL_E_DECRYPT_FAILED` when no identity matches or the header is invalid.
 */
export async function openHeader(decrypter: Decrypter, header: Buffer): Promise<Buffer> {
  try {
    return Buffer.from(await decrypter.decryptHeader(header));
  } catch (error) {
    // typage's header errors describe the file ("invalid header HMAC", "no identity matched…"), not keys.
    const reason = error instanceof Error ? error.message : String(error);
    throw new CamveilError('CAMVEIL_E_DECRYPT_FAILED', `age header: ${reason}`, { where: 'age header' });
  }
}
