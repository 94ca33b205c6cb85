import { spawnSync } from 'node:child_process';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';

/**
 * Decodes a video file with the real ffmpeg into RGB24 analysis frames, the way the gateway's analysis
 * stream does (`fps` then `scale`), so tests see real compression noise. Frame `k` gets `at = k * 1000 / fps`.
 */
export function decodeFrames(file: string, opts: { fps?: number; width?: number; height?: number } = {}): AnalysisFrame[] {
  const { fps = 2, width = 640, height = 360 } = opts;
  const { ffmpeg } = findFfmpeg();
  const r = spawnSync(
    ffmpeg,
    ['-hide_banner', '-loglevel', 'error', '-i', file, '-vf', `fps=${fps},scale=${width}:${height}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
    { maxBuffer: 512 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`ffmpeg could not decode ${file}: ${r.stderr.toString()}`);
  const size = width * height * 3;
  const frames: AnalysisFrame[] = [];
  for (let seq = 0; (seq + 1) * size <= r.stdout.length; seq++) {
    frames.push({ cameraId: 'test', at: (seq * 1000) / fps, seq, width, height, data: r.stdout.subarray(seq * size, (seq + 1) * size) });
  }
  return frames;
}
