import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Looks for media or metadata in clear in bytes that should be age ciphertext (stored objects, databases,
 * HTTP bodies).
 *
 * Short signatures cannot be searched for literally in ciphertext: a 3-byte JPEG start (FF D8 FF) occurs
 * about once per 16 MiB of random bytes and a 4-byte MP4 box type about once per 4 GiB, so a literal
 * search over a few clips' worth of ciphertext fails now and then for no reason. Instead:
 *  - JPEG: a start of image followed by a chain of well-formed marker segments (FF xx, length), which
 *    random bytes produce with probability ~2^-40 per position;
 *  - MP4: a box type preceded by a big-endian size that fits in the buffer (~2^-40 per position for
 *    megabytes of random bytes);
 *  - everything else (manifest field names, media types, ids, samples of the real plaintext) as long
 *    literal needles.
 */

export interface Needle {
  label: string;
  bytes: Buffer;
}

export interface Finding {
  what: string;
  offset: number;
}

/** Markers that may follow a JPEG's start of image or a previous segment, before the scan data. */
const JPEG_SEGMENT_MARKERS = new Set([
  ...Array.from({ length: 16 }, (_, i) => 0xe0 + i), // APP0–APP15
  0xdb, // DQT
  0xc4, // DHT
  0xc0, 0xc1, 0xc2, // SOF0–SOF2
  0xdd, // DRI
  0xfe, // COM
]);
const JPEG_SOS = 0xda;

/** Offsets of JPEG starts followed by at least two well-formed segments (or one and then scan data / the end). */
export function findJpegStarts(buf: Buffer): number[] {
  const found: number[] = [];
  const soi = Buffer.from([0xff, 0xd8, 0xff]);
  for (let i = buf.indexOf(soi); i !== -1; i = buf.indexOf(soi, i + 1)) {
    let p = i + 2;
    let segments = 0;
    for (;;) {
      if (p + 4 > buf.length) {
        if (segments >= 1) found.push(i);
        break;
      }
      if (buf[p] !== 0xff) break;
      const marker = buf[p + 1]!;
      if (marker === JPEG_SOS) {
        if (segments >= 1) found.push(i);
        break;
      }
      if (!JPEG_SEGMENT_MARKERS.has(marker)) break;
      const length = buf.readUInt16BE(p + 2);
      if (length < 2) break;
      p += 2 + length;
      segments += 1;
      if (segments >= 2) {
        found.push(i);
        break;
      }
    }
  }
  return found;
}

/** Offsets of ISO-BMFF box headers of `type` (4 ASCII characters) whose 32-bit size fits in `buf`. */
export function findMp4Boxes(buf: Buffer, type: string): number[] {
  const found: number[] = [];
  const tag = Buffer.from(type, 'latin1');
  for (let i = buf.indexOf(tag, 4); i !== -1; i = buf.indexOf(tag, i + 1)) {
    const start = i - 4;
    const size = buf.readUInt32BE(start);
    if (size >= 8 && size <= buf.length - start) found.push(start);
  }
  return found;
}

/** Occurrences of `pattern` anywhere (for reporting how often short signatures turn up by chance). */
export function countOccurrences(buf: Buffer, pattern: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(pattern); i !== -1; i = buf.indexOf(pattern, i + 1)) n += 1;
  return n;
}

/** Everything in `buf` that looks like plaintext media or matches one of `needles`. */
export function findPlaintext(buf: Buffer, needles: readonly Needle[]): Finding[] {
  const findings: Finding[] = [];
  for (const offset of findJpegStarts(buf)) findings.push({ what: 'JPEG start of image with marker segments', offset });
  for (const type of ['ftyp', 'moof', 'mdat', 'moov']) {
    for (const offset of findMp4Boxes(buf, type)) findings.push({ what: `MP4 '${type}' box`, offset });
  }
  for (const needle of needles) {
    const offset = buf.indexOf(needle.bytes);
    if (offset !== -1) findings.push({ what: needle.label, offset });
  }
  return findings;
}

/**
 * What a broker reads in clear of one MQTT message from or to the hub: its bytes, and (for a signed envelope
 * `{payload, …}`) the base64 payload decoded, which is signed, not sealed.
 */
export function clearTextOfMessage(raw: Buffer): Buffer {
  try {
    const body = JSON.parse(raw.toString('utf8')) as { payload?: unknown };
    if (body !== null && typeof body === 'object' && typeof body.payload === 'string') return Buffer.concat([raw, Buffer.from('\n'), Buffer.from(body.payload, 'base64')]);
  } catch {
    // Not JSON: the bytes are all there is.
  }
  return raw;
}

/** Every regular file under `dir` (recursively) with its content. */
export function readTree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(p, readFileSync(p));
    }
  };
  walk(dir);
  return out;
}
