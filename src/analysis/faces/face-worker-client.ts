import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CamveilError, type ErrorCode, ERROR_CODES } from '../../errors.js';
import type { FaceBox } from './face-engine.js';
import type { FromWorker, ToWorker } from './face-worker-protocol.js';

export interface WorkerResult {
  descriptors: Float32Array[];
  skipped: number;
  /** Every face found, with the index of its descriptor when it was described (see face-worker-protocol.ts). */
  faces: Array<{ box: FaceBox; descriptor?: number }>;
  ms: number;
}

/**
 * Starts face-worker in a worker thread. Built code has face-worker.js beside this file; from sources
 * (tsx, vitest) only the .ts exists, and a worker thread does not inherit the parent's TypeScript loader
 * (Node 20 ignores `--import tsx` in a Worker's execArgv for ESM hooks), so the worker loads it through
 * tsx's own `tsImport`.
 */
function spawnFaceWorker(): Worker {
  const built = new URL('./face-worker.js', import.meta.url);
  if (built.protocol === 'file:' && existsSync(fileURLToPath(built))) return new Worker(built);
  const source = new URL('./face-worker.ts', import.meta.url).href;
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(source)}, ${JSON.stringify(source)}))`;
  return new Worker(code, { eval: true });
}

const asCode = (code: string): ErrorCode => (code in ERROR_CODES ? (code as ErrorCode) : 'CAMVEIL_E_INTERNAL');

/**
 * The main thread's handle on one face worker: one request at a time (the stage serialises them), the
 * worker's own call counters mirrored here. `terminate()` ends the thread and frees everything it held.
 */
export class FaceWorkerClient {
  readonly #worker: Worker;
  #pending: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | undefined;
  #dead: Error | undefined;
  detectCalls = 0;
  describeCalls = 0;
  /** The TensorFlow.js backend the worker loaded the nets on (`wasm`, or `tensorflow` with tfjs-node). */
  backend: string | undefined;

  readonly #onLoad: ((error: CamveilError | undefined) => void) | undefined;

  /** `onLoad` is told how each load ended: undefined when the models loaded, else why not (model, backend). */
  constructor(options: { onLoad?: (error: CamveilError | undefined) => void } = {}) {
    this.#onLoad = options.onLoad;
    this.#worker = spawnFaceWorker();
    this.#worker.on('message', (m: FromWorker) => {
      const pending = this.#pending;
      this.#pending = undefined;
      if (m.type === 'loaded') this.backend = m.backend;
      if (m.type === 'result' || m.type === 'unloaded') {
        this.detectCalls = m.detectCalls;
        this.describeCalls = m.describeCalls;
      }
      if (m.type === 'error') pending?.reject(new CamveilError(asCode(m.code), m.message, { where: 'faces' }));
      else pending?.resolve(m);
    });
    const fail = (error: Error) => {
      this.#dead ??= error;
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.reject(error);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new CamveilError('CAMVEIL_E_INTERNAL', `face worker exited (${code})`, { where: 'faces' })));
  }

  /** False once the thread failed or exited; the stage then starts a new one. */
  get alive(): boolean {
    return this.#dead === undefined;
  }

  #request(message: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    if (this.#pending !== undefined) return Promise.reject(new CamveilError('CAMVEIL_E_INTERNAL', 'face worker is busy', { where: 'faces' }));
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#worker.postMessage(message, transfer);
    });
  }

  /** Verifies and loads the models in the worker. */
  async load(): Promise<void> {
    try {
      await this.#request({ type: 'load' });
    } catch (error) {
      this.#onLoad?.(error instanceof CamveilError ? error : new CamveilError('CAMVEIL_E_INTERNAL', String(error), { where: 'faces', cause: error }));
      throw error;
    }
    this.#onLoad?.(undefined);
  }

  /** Runs one RGB24 frame; `pixels` is transferred (the caller must not use it afterwards). */
  async analyse(id: number, width: number, height: number, pixels: ArrayBuffer): Promise<WorkerResult> {
    const m = await this.#request({ type: 'frame', id, width, height, pixels }, [pixels]);
    if (m.type !== 'result') throw new CamveilError('CAMVEIL_E_INTERNAL', `face worker answered ${m.type} to a frame`, { where: 'faces' });
    return { descriptors: m.descriptors, skipped: m.skipped, faces: m.faces, ms: m.ms };
  }

  /** Disposes the nets (engine.unload()), then ends the thread. */
  async close(): Promise<void> {
    try {
      if (this.alive) await this.#request({ type: 'unload' });
    } finally {
      await this.#worker.terminate();
    }
  }
}
