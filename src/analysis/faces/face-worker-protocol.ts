/** Messages between the face stage (main thread) and its worker (face-worker.ts). Pixels and descriptors move as transferred ArrayBuffers. */

export type ToWorker =
  | { type: 'load' }
  | { type: 'frame'; id: number; width: number; height: number; pixels: ArrayBuffer }
  | { type: 'unload' };

/** Why a detected face was not described. */
export type SkipReason = 'too-small' | 'low-score' | 'off-frame';

export type FromWorker =
  | { type: 'loaded'; backend: string }
  | {
      type: 'result';
      id: number;
      /** One 128-D descriptor per usable face, best detection score first; their buffers are transferred. */
      descriptors: Float32Array[];
      /** Faces found but not usable for recognition (quality filter). */
      skipped: number;
      /**
       * Every face found, usable or not, best score first: its box (frame pixels) and, when it was
       * described, the index of its descriptor in `descriptors`. Bystander blurring needs the boxes.
       */
      faces: Array<{ box: { x: number; y: number; width: number; height: number }; descriptor?: number }>;
      ms: number;
      detectCalls: number;
      describeCalls: number;
    }
  | { type: 'unloaded'; detectCalls: number; describeCalls: number }
  | { type: 'error'; id?: number; code: string; message: string };
