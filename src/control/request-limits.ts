/**
 * How large an MQTT request may be, derived from the largest arguments a command has: `faces/enrol` and
 * `faces/add-photos` with MAX_PHOTOS photos. The schema (face-commands.ts), the app's downscaling
 * (`camveil app faces …`) and the hub's caps all come from these numbers, so they cannot disagree.
 *
 * `camveil app` scales each photo to PHOTO_MAX_SIDE on its longer side and re-encodes it as JPEG before
 * sealing: the enrolment detector (SSD MobileNet) sees 512×512, its padded pass takes at most 1024 px
 * (face-engine.ts MAX_PADDED_SIDE), and the recognition net 150×150 aligned chips, so more pixels only cost
 * bytes. On face-api's six demo photos, scaled up to 4032 px (1.1–2.4 MB as a phone would send them), this
 * gives 110–222 KB each at quality 90.
 */

/** Photos per `faces/enrol` or `faces/add-photos` request. */
export const MAX_PHOTOS = 5;
/** The longer side, in pixels, `camveil app` scales a photo to before sealing (never enlarging). */
export const PHOTO_MAX_SIDE = 1024;
/** One photo as sent, encoded (JPEG after scaling), in bytes. */
export const MAX_PHOTO_BYTES = 384 * 1024;

/** Length of `n` bytes in base64. */
export function base64Length(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/** A photo's base64 text in the args. */
export const MAX_PHOTO_BASE64 = base64Length(MAX_PHOTO_BYTES);
/** The args besides the photos: a name, a guardian's attestation, flags, JSON punctuation. */
const OTHER_ARGS_BYTES = 64 * 1024;
/** The most the opened `sealedArgs` may hold: a hard cap checked while decrypting, whatever the request's size. */
export const MAX_ARGS_BYTES = MAX_PHOTOS * (MAX_PHOTO_BASE64 + 3) + OTHER_ARGS_BYTES;

/** An age file of `n` plaintext bytes to one recipient: header (generous), nonce, a 16-byte tag per 64 KiB chunk. */
function ageLength(n: number): number {
  return 1024 + 16 + n + 16 * (Math.floor(n / 65536) + 1);
}

/** The payload's other fields (`v`, `hub`, `base`, `command`, `transaction`, `seq`, `ts`) and the envelope's (`keyId`, `sig`). */
const FIELDS_BYTES = 1024;

/**
 * The largest request envelope the hub reads: MAX_ARGS_BYTES sealed, in base64 in the payload, the payload in
 * base64 in the envelope (about 4.6 MiB). Anything larger is refused before it is parsed.
 */
export const MAX_REQUEST_BYTES = base64Length(base64Length(ageLength(MAX_ARGS_BYTES)) + FIELDS_BYTES) + FIELDS_BYTES;
