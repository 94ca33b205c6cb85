import { parentPort } from 'node:worker_threads';
import { asCamveilError } from '../../errors.js';
import { FaceEngine, type Face, type FaceDetector } from './face-engine.js';
import type { FromWorker, ToWorker } from './face-worker-protocol.js';

/** Camera frames go through the tiny detector: SSD alone takes longer than 2 cameras at 2 fps allow (see FaceDetector). */
const LIVE_DETECTOR: FaceDetector = 'tiny';

/**
 * The face worker: runs the nets off the main thread so a 100–300 ms frame never stalls ingest, motion or
 * MQTT. One frame at a time: detect (tiny detector, no padding: a face never fills a camera frame) → quality filter →
 * describe each usable face → descriptors back, transferred. The main thread (face-stage.ts) decides what
 * reaches here; this file never asks the gate and never sees a camera id.
 */
const port = parentPort;
if (port === null) throw new Error('face-worker.ts must run in a worker thread');

const engine = new FaceEngine();

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'load':
      await engine.load();
      send({ type: 'loaded', backend: engine.backend?.name ?? 'unknown' });
      return;
    case 'unload': {
      engine.unload();
      const s = engine.stats();
      send({ type: 'unloaded', detectCalls: s.detectCalls, describeCalls: s.describeCalls });
      return;
    }
    case 'frame': {
      const started = performance.now();
      await engine.load();
      const image = { width: message.width, height: message.height, data: new Uint8Array(message.pixels), channels: 3 as const };
      const faces = await engine.detect(image, { pad: 'never', landmarks: false, detector: LIVE_DETECTOR });
      const descriptors: Float32Array[] = [];
      const found: Array<{ box: Face['box']; descriptor?: number }> = [];
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
      const s = engine.stats();
      // A descriptor may be a view on a larger buffer: copy so exactly its 512 bytes are transferred.
      const owned = descriptors.map((d) => new Float32Array(d));
      send(
        { type: 'result', id: message.id, descriptors: owned, skipped, faces: found, ms: performance.now() - started, detectCalls: s.detectCalls, describeCalls: s.describeCalls },
        owned.map((d) => d.buffer),
      );
      return;
    }
  }
}

// Messages are handled strictly one after another: the stage sends the next frame only after a result.
let chain: Promise<void> = Promise.resolve();
port.on('message', (message: ToWorker) => {
  chain = chain.then(async () => {
    try {
      await handle(message);
    } catch (error) {
      const e = asCamveilError(error, 'faces');
      send({ type: 'error', ...(message.type === 'frame' ? { id: message.id } : {}), code: e.code, message: e.message });
    }
  });
});
