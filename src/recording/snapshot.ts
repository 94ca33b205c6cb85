import sharp from 'sharp';
import { paintPrivacyMasks } from '../analysis/mask.js';
import type { AnalysisFrame } from '../cameras/frame.js';
import type { Polygon } from '../config/schema.js';
import { CamveilError } from '../errors.js';
import type { Snapshot } from './sink.js';

/**
 * JPEG quality when none is given: at 80 a 640x360 snapshot of the face-api sample photos is 31-49 KB,
 * small enough to send with every event notification.
 */
const DEFAULT_QUALITY = 80;

/**
 * Encodes an analysis frame as the event's JPEG snapshot, with every privacy mask painted black first.
 * Works in memory only: sharp encodes to a Buffer and never writes a file. sharp writes no metadata unless
 * asked (`withMetadata`), so the JPEG carries no EXIF, camera model or time beyond what `Snapshot` says.
 * The frame's buffer is not modified. Throws CAMVEIL_E_INTERNAL when the frame's bytes do not match its
 * size or `quality` is not an integer in 1..100.
 */
export async function encodeSnapshot(
  frame: AnalysisFrame,
  opts: { eventId: string; privacyMasks: readonly Polygon[]; quality?: number },
): Promise<Snapshot> {
  const { width, height } = frame;
  const quality = opts.quality ?? DEFAULT_QUALITY;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new CamveilError('CAMVEIL_E_INTERNAL', `JPEG quality ${quality} is not an integer in 1..100`, { where: 'snapshot' });
  }
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || frame.data.length !== width * height * 3) {
    throw new CamveilError('CAMVEIL_E_INTERNAL', `frame is ${width}x${height} but holds ${frame.data.length} bytes, not RGB24`, {
      where: 'snapshot',
    });
  }
  const rgb = paintPrivacyMasks(frame.data, width, height, opts.privacyMasks);
  const jpeg = await sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer();
  return { eventId: opts.eventId, cameraId: frame.cameraId, at: frame.at, contentType: 'image/jpeg', width, height, jpeg };
}
