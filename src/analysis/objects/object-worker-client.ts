import type { Box } from '../box.js';
import { ModelWorkerClient } from '../model-worker-client.js';
import type { NetCalls } from '../model-worker-protocol.js';
import { COCO_CLASSES } from './object-classes.js';
import type { ObjectNetOutput } from './object-net-host.js';

/** The name the object net is hosted under in the model worker (net-hosts.ts). */
const NET = 'objects';

/** One object the net found: its COCO class (index and name), score, and box in frame pixels. */
export interface RawDetection {
  classIndex: number;
  cocoClass: string;
  score: number;
  box: Box;
}

/**
 * The main thread's handle on the object net in a model worker thread of its own (started here, ended by
 * close()). One frame at a time is the caller's to keep; the net's call counter is mirrored here.
 */
export class ObjectWorkerClient {
  readonly #worker: ModelWorkerClient;
  /** Model calls (one per crop) since the net was loaded. */
  modelCalls = 0;
  /** The TensorFlow.js backend the worker loaded the net on (`wasm`, or `tensorflow` with tfjs-node). */
  backend: string | undefined;

  constructor() {
    this.#worker = new ModelWorkerClient();
  }

  /** False once the thread failed or exited. */
  get alive(): boolean {
    return this.#worker.alive;
  }

  #count(calls: NetCalls): void {
    this.modelCalls = calls.modelCalls ?? this.modelCalls;
  }

  /** Verifies and loads the model in the worker. Throws `CAMVEIL_E_MODEL_INVALID` or `CAMVEIL_E_BACKEND_UNAVAILABLE`. */
  async load(): Promise<void> {
    this.backend = await this.#worker.load(NET);
  }

  /**
   * Looks for objects in the square `crops` of one RGB24 frame (frame pixels; see crop-planner.ts). The
   * worker gets a copy of the pixels, transferred: the caller keeps the original. Resolves with every
   * detection above the net's low floor (object-net-host.ts SCORE_FLOOR), best first, and the time the
   * worker took.
   */
  async detect(frame: { width: number; height: number; data: Uint8Array }, crops: readonly Box[]): Promise<{ detections: RawDetection[]; ms: number }> {
    const pixels = new ArrayBuffer(frame.data.length);
    new Uint8Array(pixels).set(frame.data);
    const input = { width: frame.width, height: frame.height, pixels, crops: crops.map(({ x, y, width, height }) => ({ x, y, width, height })) };
    const { output, ms, calls } = await this.#worker.run(NET, input);
    this.#count(calls);
    const { detections } = output as ObjectNetOutput;
    return {
      detections: detections.map((d) => ({ classIndex: d.classIndex, cocoClass: COCO_CLASSES[d.classIndex] ?? `class ${d.classIndex}`, score: d.score, box: d.box })),
      ms,
    };
  }

  /** Disposes the net, then ends the thread. */
  async close(): Promise<void> {
    try {
      if (this.alive) this.#count(await this.#worker.unload(NET));
    } finally {
      await this.#worker.terminate();
    }
  }
}
