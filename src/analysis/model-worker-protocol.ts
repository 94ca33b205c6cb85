import type { Box } from './box.js';

/**
 * Messages between the main thread (ModelWorkerClient) and the model worker (model-worker.ts). Nets are
 * named (`faces`, …: see net-hosts.ts); every request carries a sequence number its answer repeats. Pixels
 * and results move as transferred ArrayBuffers.
 */

/** One RGB24 frame for a net: `width * height * 3` bytes, transferred to the worker. */
export interface NetInput {
  width: number;
  height: number;
  pixels: ArrayBuffer;
  /**
   * Square regions of the frame (frame pixels; they may reach past its edges) to look in, for nets that
   * look at parts of a frame (`objects`); the others ignore it.
   */
  crops?: Box[];
}

/** How often each of a net's calls ran since it was loaded: proof that it did (not) run. */
export type NetCalls = Record<string, number>;

export type ToModelWorker =
  | { type: 'load'; seq: number; net: string }
  | { type: 'run'; seq: number; net: string; input: NetInput }
  | { type: 'unload'; seq: number; net: string };

export type FromModelWorker =
  | { type: 'loaded'; seq: number; net: string; backend: string }
  | { type: 'result'; seq: number; net: string; output: unknown; ms: number; calls: NetCalls }
  | { type: 'unloaded'; seq: number; net: string; calls: NetCalls }
  | { type: 'error'; seq: number; net: string; code: string; message: string };
