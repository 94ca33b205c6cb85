import { CamveilError } from '../../errors.js';

/**
 * Euclidean distance between two face descriptors. Kept apart from the face engine so that matching on
 * the main thread does not load TensorFlow.js and the face nets (they live in the worker).
 */
export function distance(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new CamveilError('CAMVEIL_E_INTERNAL', `descriptor lengths differ: ${a.length} and ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    sum += d * d;
  }
  return Math.sqrt(sum);
}
