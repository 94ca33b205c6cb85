import { CamveilError } from '../../errors.js';
import { ModelWorkerClient } from '../model-worker-client.js';
import type { NetCalls } from '../model-worker-protocol.js';
import type { FaceNetOutput } from './face-net-host.js';

export interface WorkerResult extends FaceNetOutput {
  ms: number;
}

/** The name the face nets are hosted under in the model worker (net-hosts.ts). */
const NET = 'faces';

/**
 * The face stage's handle on the face nets in a model worker thread of its own (started here, ended by
 * close(): the models' memory is freed when no camera may use faces). One request at a time (the stage
 * serialises them); the nets' call counters mirrored here.
 */
export class FaceWorkerClient {
  readonly #worker: ModelWorkerClient;
  readonly #onLoad: ((error: CamveilError | undefined) => void) | undefined;
  detectCalls = 0;
  describeCalls = 0;
  /** The TensorFlow.js backend the worker loaded the nets on (`wasm`, or `tensorflow` with tfjs-node). */
  backend: string | undefined;

  /** `onLoad` is told how each load ended: undefined when the models loaded, else why not (model, backend). */
  constructor(options: { onLoad?: (error: CamveilError | undefined) => void } = {}) {
    this.#onLoad = options.onLoad;
    this.#worker = new ModelWorkerClient();
  }

  /** False once the thread failed or exited; the stage then starts a new one. */
  get alive(): boolean {
    return this.#worker.alive;
  }

  #count(calls: NetCalls): void {
    this.detectCalls = calls.detectCalls ?? this.detectCalls;
    this.describeCalls = calls.describeCalls ?? this.describeCalls;
  }

  /** Verifies and loads the models in the worker. */
  async load(): Promise<void> {
    try {
      this.backend = await this.#worker.load(NET);
    } catch (error) {
      this.#onLoad?.(error instanceof CamveilError ? error : new CamveilError('CAMVEIL_E_INTERNAL', String(error), { where: 'faces', cause: error }));
      throw error;
    }
    this.#onLoad?.(undefined);
  }

  /**
   * Runs one RGB24 frame. The worker gets a copy of the pixels (transferred to it): the caller keeps the
   * original, which the pipeline still needs for its snapshot.
   */
  async analyse(frame: { width: number; height: number; data: Uint8Array }): Promise<WorkerResult> {
    const pixels = new ArrayBuffer(frame.data.length);
    new Uint8Array(pixels).set(frame.data);
    const { output, ms, calls } = await this.#worker.run(NET, { width: frame.width, height: frame.height, pixels });
    this.#count(calls);
    const { descriptors, skipped, faces } = output as FaceNetOutput;
    return { descriptors, skipped, faces, ms };
  }

  /** Disposes the nets (engine.unload()), then ends the thread. */
  async close(): Promise<void> {
    try {
      if (this.alive) this.#count(await this.#worker.unload(NET));
    } finally {
      await this.#worker.terminate();
    }
  }
}
