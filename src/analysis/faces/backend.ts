import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { CamveilError } from '../../errors.js';

const require = createRequire(import.meta.url);

/** Which TensorFlow.js backend runs the face nets; goes into the hub's retained state. */
export interface BackendInfo {
  name: 'tensorflow' | 'wasm';
  /** Whether the wasm SIMD build runs (false for the native `tensorflow` backend, where it does not apply). */
  simd: boolean;
}

/**
 * The wasm binaries ship inside `@tensorflow/tfjs-backend-wasm/dist`. Given as a file path, the backend's
 * Node build reads them with fs: nothing is fetched from the network.
 */
export const WASM_DIR = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + sep;

// An optional dependency whose install script is switched off in package.json's `allowScripts`: the
// script downloads libtensorflow from outside the npm registry, which these hubs cannot reach and must
// not try. Installed that way the package has no native addon and its import throws, so the wasm
// backend runs; on a hub with that access, allowing the script and `npm rebuild @tensorflow/tfjs-node`
// makes it load. A variable, so TypeScript does not resolve the package's types.
const TFJS_NODE = '@tensorflow/tfjs-node';

let started: Promise<BackendInfo> | undefined;

async function tryNative(): Promise<BackendInfo | undefined> {
  try {
    await import(TFJS_NODE);
  } catch {
    return undefined;
  }
  return (await tf.setBackend('tensorflow')) ? { name: 'tensorflow', simd: false } : undefined;
}

async function start(): Promise<BackendInfo> {
  const native = await tryNative();
  if (native !== undefined) return native;
  try {
    setWasmPaths(WASM_DIR);
  } catch {
    // Already set by an earlier start in this process: the paths are the same constant.
  }
  let ok = false;
  let cause: unknown;
  try {
    ok = await tf.setBackend('wasm');
    await tf.ready();
  } catch (error) {
    cause = error;
  }
  if (!ok || tf.getBackend() !== 'wasm') {
    throw new CamveilError('CAMVEIL_E_BACKEND_UNAVAILABLE', `the TensorFlow.js wasm backend did not start (wasm files from ${WASM_DIR})`, {
      where: 'faces',
      cause,
    });
  }
  return { name: 'wasm', simd: (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true };
}

/**
 * Starts the backend for the face nets, once per process: `@tensorflow/tfjs-node` when it is installed
 * (optional, absent by default), else the wasm backend (SIMD when the CPU has it). Never the plain JS
 * cpu backend: falling back to it would hide a broken wasm install behind a much slower hub.
 *
 * Throws `CAMVEIL_E_BACKEND_UNAVAILABLE` when neither starts; a later call tries again.
 */
export function initBackend(): Promise<BackendInfo> {
  started ??= start().catch((error: unknown) => {
    started = undefined;
    throw error;
  });
  return started;
}
