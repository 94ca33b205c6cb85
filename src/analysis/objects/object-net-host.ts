import * as tf from '@tensorflow/tfjs-core';
import { CamveilError } from '../../errors.js';
import { clampBox, type Box } from '../box.js';
import { initBackend } from '../faces/backend.js';
import { verifyModels } from '../model-files.js';
import type { NetInput } from '../model-worker-protocol.js';
import type { NetHost } from '../net-host.js';
import { CenterNet, modelSideFor } from './centernet.js';
import { COCO_CLASSES, labelOf } from './object-classes.js';
import { suppressDuplicates, type Detection } from './suppress-duplicates.js';

/**
 * Detections below this score are not sent back at all. Low on purpose: the main thread applies the
 * operating threshold (config `minScore`), and the benchmark needs the low-scoring ones for AP.
 */
export const SCORE_FLOOR = 0.1;
/**
 * A box cut by the edge of its crop that lies at least this much (of its own area) inside a better box of
 * its family from another crop is the same object seen in part.
 */
const CONTAINED = 0.8;
/** How close (frame pixels) to a crop's inner edge a box must come to count as cut by it. */
const EDGE = 2;

/** What the `objects` net answers for one frame: plain data, structured-cloned back. */
export interface ObjectNetOutput {
  /** Every detection at or above SCORE_FLOOR, one per object across the crops, best first; boxes in frame pixels. */
  detections: Detection[];
  /** How many crops the net ran on (one model call each; a crop wholly outside the frame is skipped). */
  crops: number;
}

/**
 * Which detections may be one object: the label group (a car also scored as a truck is one vehicle, a cat
 * also scored as a dog one animal), any other class on its own. A person on a bicycle stays two objects.
 */
function familyOf(classIndex: number): string {
  const name = COCO_CLASSES[classIndex];
  return (name === undefined ? undefined : labelOf(name)) ?? `class ${classIndex}`;
}

/** The whole frame as one square, centred: what the net looks at when no crops are given. */
function wholeFrame(width: number, height: number): Box {
  const side = Math.max(width, height);
  return { x: Math.floor((width - side) / 2), y: Math.floor((height - side) / 2), width: side, height: side };
}

function checkInput(input: NetInput): Box[] {
  const { width, height, pixels } = input;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 2 || height < 2 || pixels.byteLength !== width * height * 3) {
    throw new CamveilError('CAMVEIL_E_INTERNAL', `the objects net takes RGB24 frames of at least 2×2; got ${width}×${height} with ${pixels.byteLength} bytes`, { where: 'objects' });
  }
  const crops = input.crops ?? [wholeFrame(width, height)];
  for (const crop of crops) {
    const finite = [crop.x, crop.y, crop.width, crop.height].every(Number.isFinite);
    if (!finite || crop.width < 1 || Math.abs(crop.width - crop.height) > 1) {
      throw new CamveilError('CAMVEIL_E_INTERNAL', `the objects net takes square crops; got ${JSON.stringify(crop)}`, { where: 'objects' });
    }
  }
  // Whole pixels (the crop planner's crops already are): the cut is a slice of the frame.
  return crops.map((c) => ({ x: Math.round(c.x), y: Math.round(c.y), width: Math.round(c.width), height: Math.round(c.width) }));
}

/**
 * The crop cut from the frame and scaled to `side`: its part inside the frame, padded black to the whole
 * square where it reaches past the frame's edges, then resized (bilinear, half-pixel centres: output pixel i
 * samples the centre of the i-th of `side` equal steps across the crop). Undefined when the crop lies wholly
 * outside the frame. On a 640×360 frame's full-frame crop this takes 4.5 ms where `tf.image.cropAndResize`
 * took 10.8 ms (wasm, median of 22).
 */
function cutCrop(frame: tf.Tensor4D, crop: Box, side: number): tf.Tensor4D | undefined {
  const [, height, width] = frame.shape;
  const left = Math.min(Math.max(crop.x, 0), width);
  const top = Math.min(Math.max(crop.y, 0), height);
  const right = Math.min(Math.max(crop.x + crop.width, 0), width);
  const bottom = Math.min(Math.max(crop.y + crop.height, 0), height);
  if (right <= left || bottom <= top) return undefined;
  return tf.tidy(() => {
    const visible = tf.slice(frame, [0, top, left, 0], [1, bottom - top, right - left, 3]);
    const padding: Array<[number, number]> = [[0, 0], [top - crop.y, crop.y + crop.height - bottom], [left - crop.x, crop.x + crop.width - right], [0, 0]];
    const square = padding.some(([a, b]) => a > 0 || b > 0) ? tf.pad(visible, padding) : visible;
    return square.shape[1] === side ? square : tf.image.resizeBilinear(square, [side, side], false, true);
  });
}

/** Whether `box` (frame pixels) touches an edge of `crop` that lies inside the frame: the crop cut it. */
function cutByCrop(box: Box, crop: Box, width: number, height: number): boolean {
  const left = crop.x;
  const top = crop.y;
  const right = crop.x + crop.width;
  const bottom = crop.y + crop.height;
  return (
    (left > 0 && box.x <= left + EDGE) ||
    (top > 0 && box.y <= top + EDGE) ||
    (right < width && box.x + box.width >= right - EDGE) ||
    (bottom < height && box.y + box.height >= bottom - EDGE)
  );
}

/**
 * The object net in the model worker. For each square crop of the frame: cut and scale it to its model
 * side (`modelSideFor`: 320 for crops up to 320 px, 384 for larger crops; see
 * MODEL_SIDES for the figures), run MB3-CenterNet, map the boxes back to frame pixels and clamp them to the
 * frame. Then one object seen in two overlapping crops becomes one detection: duplicates of one family are
 * suppressed across crops by IoU, and a box cut by its crop's edge that lies inside a better box from
 * another crop goes too.
 */
export function objectNetHost(): NetHost {
  let net: CenterNet | undefined;
  let backend = 'unknown';
  let closedCalls = 0;
  return {
    async load() {
      if (net !== undefined) return backend;
      const models = await verifyModels('objects');
      backend = (await initBackend()).name;
      net = await CenterNet.load(models);
      return backend;
    },
    async run(input: NetInput) {
      if (net === undefined) throw new CamveilError('CAMVEIL_E_INTERNAL', 'the objects net is not loaded', { where: 'objects' });
      const crops = checkInput(input);
      const { width, height } = input;
      const found: Array<Detection & { crop: number }> = [];
      let ran = 0;
      if (crops.length > 0) {
        const frame = tf.tensor4d(new Uint8Array(input.pixels), [1, height, width, 3], 'float32');
        try {
          for (const [index, crop] of crops.entries()) {
            const side = modelSideFor(crop.width);
            const scale = crop.width / side;
            const cut = cutCrop(frame, crop, side);
            if (cut === undefined) continue;
            let detections: Detection[];
            try {
              detections = await net.detect(cut, { minScore: SCORE_FLOOR, familyOf });
              ran += 1;
            } finally {
              cut.dispose();
            }
            for (const d of detections) {
              const box = clampBox({ x: crop.x + d.box.x * scale, y: crop.y + d.box.y * scale, width: d.box.width * scale, height: d.box.height * scale }, width, height);
              if (box.width > 0 && box.height > 0) found.push({ classIndex: d.classIndex, score: d.score, box, crop: index });
            }
          }
        } finally {
          frame.dispose();
        }
      }
      const merged = suppressDuplicates(found, {
        familyOf,
        ...(crops.length > 1 ? { containment: { fraction: CONTAINED, truncated: (d: (typeof found)[number]) => cutByCrop(d.box, crops[d.crop]!, width, height) } } : {}),
      });
      const output: ObjectNetOutput = { detections: merged.map(({ classIndex, score, box }) => ({ classIndex, score, box })), crops: ran };
      return { output, transfer: [] };
    },
    unload() {
      closedCalls += net?.calls ?? 0;
      net?.dispose();
      net = undefined;
    },
    calls() {
      return { modelCalls: closedCalls + (net?.calls ?? 0) };
    },
  };
}
