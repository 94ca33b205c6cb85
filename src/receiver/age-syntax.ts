/**
 * Syntax of an age v1 header (https://age-encryption.org/v1, "Header"), checked without any key:
 *
 * ```
 *     age-encryption.org/v1
 *     -> <type> [<arg> …]        one or more stanzas: arguments are non-empty runs of VCHAR (0x21–0x7e)
 *     <body>                     canonical unpadded base64, in lines of exactly 64 columns, the last
 *                                one shorter (possibly empty)
 *     --- <mac>                  43 characters: 32 bytes in canonical unpadded base64
 * ```
 *
 * The MAC cannot be verified without the file key, so this is what the cloud can check: that an upload
 * is an age file and not, by a bug on some hub, plaintext.
 */

export const AGE_VERSION_LINE = 'age-encryption.org/v1';

const VERSION_LINE_BYTES = Buffer.from(`${AGE_VERSION_LINE}\n`, 'ascii');
const ARG = /^[\x21-\x7e]+$/;
const BASE64 = /^[A-Za-z0-9+/]*$/;
const BODY_COLUMNS = 64;
const MAC_BYTES = 32;

/**
 * False as soon as the first bytes cannot begin an age file, so a JPEG or a text is refused without
 * reading up to the header-size bound. True while the bytes seen so far are a prefix of the version line.
 */
export function mayBeginAgeHeader(bytes: Buffer): boolean {
  const n = Math.min(bytes.length, VERSION_LINE_BYTES.length);
  return bytes.subarray(0, n).equals(VERSION_LINE_BYTES.subarray(0, n));
}

/** True when `text` is base64 without padding that decodes and re-encodes to itself. */
function isCanonicalBase64(text: string): boolean {
  if (!BASE64.test(text) || text.length % 4 === 1) return false;
  return Buffer.from(text, 'base64').toString('base64').replace(/=+$/, '') === text;
}

/**
 * Checks that `header` is exactly one syntactically valid age v1 header, ending with the newline after
 * the MAC line (as headerEnd in src/crypto/age-header.ts delimits it).
 *
 * @returns undefined when it is valid, else the first problem found, as `line N: reason`.
 */
export function ageHeaderProblem(header: Buffer): string | undefined {
  if (header.length === 0 || header[header.length - 1] !== 0x0a) return 'header does not end with a newline';
  for (const byte of header) {
    if (byte !== 0x0a && (byte < 0x20 || byte > 0x7e)) return 'header contains bytes that are not printable ASCII';
  }
  const lines = header.toString('ascii').slice(0, -1).split('\n');
  if (lines[0] !== AGE_VERSION_LINE) return `line 1: not "${AGE_VERSION_LINE}"`;
  let i = 1;
  let stanzas = 0;
  for (;;) {
    const line = lines[i];
    if (line === undefined) return 'header ends without a MAC line';
    if (line.startsWith('---')) break;
    if (!line.startsWith('-> ')) return `line ${i + 1}: expected a stanza ("-> …") or the MAC line ("--- …")`;
    const args = line.slice(3).split(' ');
    if (!args.every((a) => ARG.test(a))) return `line ${i + 1}: stanza type and arguments must be non-empty printable words`;
    i += 1;
    stanzas += 1;
    // The body: full 64-column lines, then one shorter line that ends it.
    for (;;) {
      const body = lines[i];
      if (body === undefined) return `line ${i + 1}: stanza body is missing its final short line`;
      if (body.length > BODY_COLUMNS) return `line ${i + 1}: stanza body line is longer than ${BODY_COLUMNS} columns`;
      if (!isCanonicalBase64(body)) return `line ${i + 1}: stanza body is not canonical unpadded base64`;
      i += 1;
      if (body.length < BODY_COLUMNS) break;
    }
  }
  if (stanzas === 0) return 'header has no recipient stanza';
  const macLine = lines[i] ?? '';
  if (i !== lines.length - 1) return `line ${i + 2}: text after the MAC line`;
  const mac = macLine.startsWith('--- ') ? macLine.slice(4) : '';
  if (!isCanonicalBase64(mac) || Buffer.from(mac, 'base64').length !== MAC_BYTES) {
    return `line ${i + 1}: MAC line must be "--- " and ${MAC_BYTES} bytes of unpadded base64`;
  }
  return undefined;
}
