import sharp from 'sharp';
import type { Box } from '../src/analysis/box.js';
import type { TruthBox } from './objects-eval.js';
import { placeBox, type LabelledImage } from './objects-set.js';

/**
 * Camera-scale frames for the objects benchmark: each labelled image shrunk into a small picture inside a
 * 640×360 frame (a landscape of the set as the scene), at a known place, so its ground truth is known in
 * frame pixels; and the scene alone, the frame before it, for the motion detector to compare with. Both
 * are JPEG-compressed at quality 80 like a camera's stream and decoded again.
 */

export const FRAME_WIDTH = 640;
export const FRAME_HEIGHT = 360;
/** The box each image is shrunk into (keeping its aspect): a person of a group photo comes out ~120 px tall. */
const FIT_WIDTH = 240;
const FIT_HEIGHT = 150;
/** Where the pictures go, in turn (top-left corners, frame pixels): all corners and the middle. */
const PLACES: readonly (readonly [number, number])[] = [
  [24, 20],
  [376, 190],
  [200, 100],
  [376, 20],
  [24, 190],
  [300, 150],
];
/** Truth boxes shorter or narrower than this once shrunk (frame pixels) are marked difficult: no detector is asked to find a 6-pixel lamb. */
const MIN_TRUTH_SIDE = 10;

export interface CameraFrame {
  id: string;
  width: number;
  height: number;
  /** The frame with the picture in it, RGB24. */
  data: Buffer;
  /** The same scene without it: what the camera saw a moment before. */
  background: Buffer;
  /** Where the picture lies (frame pixels). */
  placed: Box;
  truth: TruthBox[];
}

async function throughJpeg(raw: Buffer): Promise<Buffer> {
  const jpeg = await sharp(raw, { raw: { width: FRAME_WIDTH, height: FRAME_HEIGHT, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
  const { data, info } = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== FRAME_WIDTH || info.height !== FRAME_HEIGHT || info.channels !== 3) throw new Error('camera frame decoded at the wrong size');
  return data;
}

/** One camera-scale frame per image of `images`, over `scene` (cut to fill 640×360). */
export async function cameraScaleFrames(images: readonly LabelledImage[], scene: LabelledImage): Promise<CameraFrame[]> {
  const sceneRaw = await sharp(scene.data, { raw: { width: scene.width, height: scene.height, channels: 3 } })
    .resize(FRAME_WIDTH, FRAME_HEIGHT, { fit: 'cover' })
    .removeAlpha()
    .raw()
    .toBuffer();
  if (sceneRaw.length !== FRAME_WIDTH * FRAME_HEIGHT * 3) throw new Error(`the scene is ${sceneRaw.length} bytes, not RGB24`);
  const background = await throughJpeg(sceneRaw);
  const frames: CameraFrame[] = [];
  for (const [i, image] of images.entries()) {
    const scale = Math.min(FIT_WIDTH / image.width, FIT_HEIGHT / image.height);
    const width = Math.max(1, Math.round(image.width * scale));
    const height = Math.max(1, Math.round(image.height * scale));
    const [left, top] = PLACES[i % PLACES.length]!;
    const small = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).resize(width, height, { fit: 'fill' }).raw().toBuffer();
    const composed = await sharp(sceneRaw, { raw: { width: FRAME_WIDTH, height: FRAME_HEIGHT, channels: 3 } })
      .composite([{ input: small, raw: { width, height, channels: 3 }, left, top }])
      .removeAlpha()
      .raw()
      .toBuffer();
    if (composed.length !== FRAME_WIDTH * FRAME_HEIGHT * 3) throw new Error(`${image.id}: composed frame is ${composed.length} bytes, not RGB24`);
    const sx = width / image.width;
    const sy = height / image.height;
    const truth = image.truth.map((t): TruthBox => {
      const box = placeBox(t.box, sx, sy, left, top);
      const tooSmall = box.width < MIN_TRUTH_SIDE || box.height < MIN_TRUTH_SIDE;
      return { group: t.group, box, ...(t.difficult === true || tooSmall ? { difficult: true } : {}) };
    });
    frames.push({ id: image.id, width: FRAME_WIDTH, height: FRAME_HEIGHT, data: await throughJpeg(composed), background, placed: { x: left, y: top, width, height }, truth });
  }
  return frames;
}
