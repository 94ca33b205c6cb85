import { readFile } from 'node:fs/promises';
import sharp, { type OutputInfo } from 'sharp';
import { CamveilError } from '../../errors.js';

/**
 * Pixels for the face engine: 8-bit, row-major, `width * height * channels` bytes. 1 = grey (IR night
 * frames), 3 = RGB24 (AnalysisFrame, decoded files), 4 = RGBA. `channels` defaults to 3 so an
 * AnalysisFrame can be passed as it is.
 */
export interface FaceImage {
  width: number;
  height: number;
  data: Uint8Array;
  channels?: 1 | 3 | 4;
}

/** A FaceImage with exactly three channels. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
  channels: 3;
}

/**
 * Checks a raw image and converts it to RGB24 (grey is replicated, alpha dropped). Returns the same
 * object when it is already RGB. Throws `CAMVEIL_E_IMAGE_INVALID` when the sizes do not add up.
 */
export function toRgb(image: FaceImage, where = 'image'): RgbImage {
  const channels = image.channels ?? 3;
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new CamveilError('CAMVEIL_E_IMAGE_INVALID', `${where}: size ${width}×${height} is not a positive integer size`, { where });
  }
  if (data.length !== width * height * channels) {
    throw new CamveilError(
      'CAMVEIL_E_IMAGE_INVALID',
      `${where}: ${data.length} bytes do not match ${width}×${height}×${channels} = ${width * height * channels}`,
      { where },
    );
  }
  if (channels === 3) return { width, height, data, channels: 3 };
  const pixels = width * height;
  const out = Buffer.allocUnsafe(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const src = p * channels;
    const dst = p * 3;
    out[dst] = data[src]!;
    out[dst + 1] = data[channels === 1 ? src : src + 1]!;
    out[dst + 2] = data[channels === 1 ? src : src + 2]!;
  }
  return { width, height, data: out, channels: 3 };
}

/**
 * The most pixels an image may decode to: a 48-megapixel phone photo fits; a few kilobytes of PNG that claim
 * to be 20,000 × 20,000 (1.2 GB of RGB) do not. sharp's own default (0x3FFF², 268 megapixels) would let one
 * enrolment photo take most of a small hub's memory.
 */
export const MAX_IMAGE_PIXELS = 50_000_000;

/**
 * Decodes an encoded image (JPEG, PNG, WebP, …) to RGB24 with sharp, turned upright by its EXIF
 * orientation (phone photos are usually stored sideways with an orientation tag). Alpha is dropped,
 * grey and CMYK become sRGB.
 *
 * Throws `CAMVEIL_E_IMAGE_INVALID` for empty input, for bytes sharp cannot decode, and for images of more than
 * MAX_IMAGE_PIXELS (checked from the header, before anything is decoded).
 */
export async function decodeImage(bytes: Uint8Array, where = 'image'): Promise<RgbImage> {
  if (bytes.length === 0) throw new CamveilError('CAMVEIL_E_IMAGE_INVALID', `${where}: the file is empty`, { where });
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(bytes, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS }).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  } catch (error) {
    const text = (error as Error).message;
    const reason = text.includes('unsupported image format')
      ? 'not an image, or a format sharp cannot decode'
      : text.includes('pixel limit')
        ? `the image has more than ${MAX_IMAGE_PIXELS / 1_000_000} megapixels`
        : text;
    throw new CamveilError('CAMVEIL_E_IMAGE_INVALID', `${where}: ${reason}`, { where, cause: error });
  }
  const { data, info } = decoded;
  if (info.channels !== 1 && info.channels !== 3 && info.channels !== 4) {
    throw new CamveilError('CAMVEIL_E_IMAGE_INVALID', `${where}: unsupported ${info.channels}-channel image`, { where });
  }
  return toRgb({ width: info.width, height: info.height, data, channels: info.channels }, where);
}

/** Reads and decodes an image file (see decodeImage); a missing or unreadable file is `CAMVEIL_E_IMAGE_INVALID`. */
export async function readImageFile(file: string): Promise<RgbImage> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_IMAGE_INVALID', `${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      where: file,
      cause: error,
    });
  }
  return decodeImage(bytes, file);
}
