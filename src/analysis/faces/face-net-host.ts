import type { NetHost } from '../net-host.js';
import type { NetInput } from '../model-worker-protocol.js';
import { FaceEngine, type FaceBox, type FaceDetector } from './face-engine.js';

/** Camera frames go through the tiny detector: SSD alone takes longer than 2 cameras at 2 fps allow (see FaceDetector). */
const LIVE_DETECTOR: FaceDetector = 'tiny';

/** What the `faces` net answers for one frame. */
export interface FaceNetOutput {
  /** One 128-D descriptor per usable face, best detection score first; their buffers are transferred. */
  descriptors: Float32Array[];
  /** Faces found but not usable for recognition (quality filter). */
  skipped: number;
  /**
   * Every face found, usable or not, best score first: its box (frame pixels) and, when it was described,
   * the index of its descriptor in `descriptors`. Bystander blurring needs the boxes.
   */
  faces: Array<{ box: FaceBox; descriptor?: number }>;
}

/**
 * The face nets in the model worker: detect (tiny detector, no padding: a face never fills a camera frame)
 * → quality filter → describe each usable face → descriptors back, transferred.
 */
export function faceNetHost(): NetHost {
  const engine = new FaceEngine();
  return {
    async load() {
      await engine.load();
      return engine.backend?.name ?? 'unknown';
    },
    async run(input: NetInput) {
      const image = { width: input.width, height: input.height, data: new Uint8Array(input.pixels), channels: 3 as const };
      const faces = await engine.detect(image, { pad: 'never', landmarks: false, detector: LIVE_DETECTOR });
      const descriptors: Float32Array[] = [];
      const found: FaceNetOutput['faces'] = [];
      let skipped = 0;
      for (const face of faces) {
        if (!face.quality.ok) {
          skipped += 1;
          found.push({ box: face.box });
          continue;
        }
        found.push({ box: face.box, descriptor: descriptors.length });
        descriptors.push(await engine.describe(image, face));
      }
      // A descriptor may be a view on a larger buffer: copy so exactly its 512 bytes are transferred.
      const owned = descriptors.map((d) => new Float32Array(d));
      const output: FaceNetOutput = { descriptors: owned, skipped, faces: found };
      return { output, transfer: owned.map((d) => d.buffer) };
    },
    unload() {
      engine.unload();
    },
    calls() {
      return { ...engine.stats() };
    },
  };
}
