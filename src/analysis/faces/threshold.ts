/**
 * Two faces are the same person when the Euclidean distance between their descriptors is below this.
 *
 * Measured 2026-11-23 with `npm run bench -- faces` (wasm backend) on the labelled development set (CAMVEIL_FACES_DEV_DIR): 8 people,
 * 39 usable photos (1 of 40 had no usable face), 76 genuine and 665 impostor pairs.
 * - Impostor distances 0.594 … 1.007 (mean 0.820, sd 0.078); genuine 0.304 … 0.681.
 * - FAR ≤ 0.001 is met up to 0.585, with TAR 0.974; a normal fit to the impostor distances puts
 *   FAR = 0.001 at 0.580 (665 pairs cannot resolve 0.001 directly: one false accept is 0.0015).
 * - face-api's customary 0.6 already accepts two impostors here (FAR 0.003); equal error rate 1.3% at 0.651.
 * We take 0.55, below both: TAR 0.947 (72/76), FAR 0/665 measured, ≈ 2.5e-4 by the normal fit. Open-set
 * rejection matters more than recall (a stranger announced as a household member is the most common
 * complaint), and camera frames are blurrier than these photos, which pushes impostors closer too.
 */
export const MATCH_THRESHOLD = 0.55;
