import type { NetCalls, NetInput } from './model-worker-protocol.js';

/**
 * One analyser's nets as the model worker runs them: loaded from verified bytes (models/manifest.json,
 * SHA-256 pinned), run on one frame at a time, unloaded when the analyser no longer may use them. Lives
 * only inside the worker thread; the analyser on the main thread names it and never sees the nets.
 */
export interface NetHost {
  /** Verifies and loads the nets; idempotent. Resolves with the backend they run on. */
  load(): Promise<string>;
  /** Runs one frame; `transfer` lists the buffers in `output` to move (not copy) back to the main thread. */
  run(input: NetInput): Promise<{ output: unknown; transfer: ArrayBuffer[] }>;
  /** Disposes the nets and their weights. */
  unload(): void;
  calls(): NetCalls;
}
