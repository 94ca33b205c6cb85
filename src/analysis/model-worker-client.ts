import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CamveilError, type ErrorCode, ERROR_CODES } from '../errors.js';
import type { FromModelWorker, NetCalls, NetInput, ToModelWorker } from './model-worker-protocol.js';

/**
 * Starts model-worker in a worker thread. Built code has model-worker.js beside this file; from sources
 * (tsx, vitest) only the .ts exists, and a worker thread does not inherit the parent's TypeScript loader
 * (Node 20 ignores `--import tsx` in a Worker's execArgv for ESM hooks), so the worker loads it through
 * tsx's own `tsImport`.
 */
function spawnModelWorker(): Worker {
  const built = new URL('./model-worker.js', import.meta.url);
  if (built.protocol === 'file:' && existsSync(fileURLToPath(built))) return new Worker(built);
  const source = new URL('./model-worker.ts', import.meta.url).href;
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(source)}, ${JSON.stringify(source)}))`;
  return new Worker(code, { eval: true });
}

const asCode = (code: string): ErrorCode => (code in ERROR_CODES ? (code as ErrorCode) : 'CAMVEIL_E_INTERNAL');

type Request = ToModelWorker extends infer T ? (T extends { seq: number } ? Omit<T, 'seq'> : never) : never;

/**
 * The main thread's handle on one model worker thread, which hosts the nets of any analyser by name
 * (net-hosts.ts). Requests may come from several analysers at once: the worker runs them one after
 * another, and each answer finds its request by sequence number. `terminate()` ends the thread and frees
 * everything it held.
 */
export class ModelWorkerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (m: FromModelWorker) => void; reject: (e: Error) => void }>();
  #seq = 0;
  #dead: Error | undefined;

  constructor() {
    this.#worker = spawnModelWorker();
    this.#worker.on('message', (m: FromModelWorker) => {
      const pending = this.#pending.get(m.seq);
      this.#pending.delete(m.seq);
      if (m.type === 'error') pending?.reject(new CamveilError(asCode(m.code), m.message, { where: m.net }));
      else pending?.resolve(m);
    });
    const fail = (error: Error) => {
      this.#dead ??= error;
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of pending) p.reject(error);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new CamveilError('CAMVEIL_E_INTERNAL', `model worker exited (${code})`, { where: 'models' })));
  }

  /** False once the thread failed or exited. */
  get alive(): boolean {
    return this.#dead === undefined;
  }

  #request(message: Request, transfer: ArrayBuffer[] = []): Promise<FromModelWorker> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject });
      this.#worker.postMessage({ ...message, seq }, transfer);
    });
  }

  /** Verifies and loads the named nets in the worker; resolves with the backend they run on. */
  async load(net: string): Promise<string> {
    const m = await this.#request({ type: 'load', net });
    if (m.type !== 'loaded') throw new CamveilError('CAMVEIL_E_INTERNAL', `model worker answered ${m.type} to a load`, { where: net });
    return m.backend;
  }

  /** Runs one frame through the named nets; `input.pixels` is transferred (the caller must not use it afterwards). */
  async run(net: string, input: NetInput): Promise<{ output: unknown; ms: number; calls: NetCalls }> {
    const m = await this.#request({ type: 'run', net, input }, [input.pixels]);
    if (m.type !== 'result') throw new CamveilError('CAMVEIL_E_INTERNAL', `model worker answered ${m.type} to a frame`, { where: net });
    return { output: m.output, ms: m.ms, calls: m.calls };
  }

  /** Disposes the named nets; resolves with their final call counts. */
  async unload(net: string): Promise<NetCalls> {
    const m = await this.#request({ type: 'unload', net });
    if (m.type !== 'unloaded') throw new CamveilError('CAMVEIL_E_INTERNAL', `model worker answered ${m.type} to an unload`, { where: net });
    return m.calls;
  }

  /** Ends the thread. */
  async terminate(): Promise<void> {
    await this.#worker.terminate();
  }
}
