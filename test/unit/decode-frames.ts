import { spawnSync } from 'node:child_process';
import { motionGreySpec } from '../../src/analysis/motion.js';
import { analysisGraph, type MaskBox } from '../../src/cameras/ffmpeg-args.js';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';

interface DecodeOptions {
  fps?: number;
  width?: number;
  height?: number;
  /**
   * Also make each frame's motion grey image the way the ingest does (the same filter graph, the second
   * output of the same decode), with these mask boxes painted into it.
   */
  motionGrey?: { maskBoxes: readonly MaskBox[] };
}

/**
 * Decodes a video file with the real ffmpeg into RGB24 analysis frames, the way the gateway's analysis
 * stream does (`fps` then `scale`), so tests see real compression noise. Frame `k` gets `at = k * 1000 / fps`.
 */
export function decodeFrames(file: string, opts: DecodeOptions = {}): AnalysisFrame[] {
  const { fps = 2, width = 640, height = 360 } = opts;
  const { ffmpeg } = findFfmpeg();
  const grey = opts.motionGrey === undefined ? undefined : motionGreySpec(width, height);
  const outputs =
    grey === undefined
      ? ['-vf', `fps=${fps},scale=${width}:${height}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1']
      : [
          '-filter_complex', analysisGraph('0:v:0', { fps, width, height }, grey, opts.motionGrey!.maskBoxes),
          '-map', '[analysis]', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
          '-map', '[motion]', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:3',
        ];
  const r = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-i', file, ...outputs], {
    maxBuffer: 512 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  if (r.status !== 0) throw new Error(`ffmpeg could not decode ${file}: ${r.stderr.toString()}`);
  const size = width * height * 3;
  const greyBytes = r.output[3] as Buffer | null;
  const frames: AnalysisFrame[] = [];
  for (let seq = 0; (seq + 1) * size <= r.stdout.length; seq++) {
    const frame: AnalysisFrame = { cameraId: 'test', at: (seq * 1000) / fps, seq, width, height, data: r.stdout.subarray(seq * size, (seq + 1) * size) };
    if (grey !== undefined && greyBytes !== null) {
      const n = grey.width * grey.height;
      frame.motionGrey = { width: grey.width, height: grey.height, data: greyBytes.subarray(seq * n, (seq + 1) * n) };
    }
    frames.push(frame);
  }
  return frames;
}
