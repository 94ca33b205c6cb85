import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';

/** Generated test media lives here (git-ignored), outside the data directories the tests inspect. */
export const MEDIA_DIR = fileURLToPath(new URL('../../.cache/test-media/', import.meta.url));

export interface MotionVideoOptions {
  /** Total length in seconds. */
  seconds: number;
  /** Second at which a box starts moving; omit for a still scene. */
  motionAt?: number;
  /** Second at which the box stops and leaves the picture; default: end of video. */
  motionUntil?: number;
  /** Where the box moves, normalised: it travels horizontally across [x0,x1] at height y. */
  region?: { x0: number; x1: number; y: number };
  width?: number;
  height?: number;
  fps?: number;
  /** Keyframe interval in frames. */
  gop?: number;
  /** Add temporal sensor-like noise to every frame. */
  noise?: boolean;
}

/**
 * Generates (once, then cached) an H.264 MP4: a still textured scene and, from `motionAt`, a bright box
 * moving across `region`. Returns the file path.
 */
export function motionVideo(options: MotionVideoOptions): string {
  const o = { width: 1280, height: 720, fps: 15, gop: 15, noise: true, region: { x0: 0.1, x1: 0.7, y: 0.4 }, ...options };
  const name = `motion-${o.seconds}s-${o.motionAt ?? 'none'}-${o.motionUntil ?? 'end'}-${o.region.x0}-${o.region.x1}-${o.region.y}-${o.width}x${o.height}-${o.fps}fps-g${o.gop}${o.noise ? '-n' : ''}.mp4`;
  const file = path.join(MEDIA_DIR, name);
  if (existsSync(file)) return file;
  mkdirSync(MEDIA_DIR, { recursive: true });
  const box = Math.round(o.height / 6);
  const from = o.motionAt ?? o.seconds + 1;
  const until = o.motionUntil ?? o.seconds + 1;
  const x0 = Math.round(o.region.x0 * o.width);
  const span = Math.round((o.region.x1 - o.region.x0) * o.width) - box;
  const y = Math.round(o.region.y * o.height);
  const speed = span / Math.max(1, until - from);
  // The box sits off-picture (x = -2*box) outside [from, until).
  const x = `if(between(t,${from},${until}),${x0}+mod((t-${from})*${speed.toFixed(2)},${Math.max(1, span)}),-${2 * box})`;
  const filter =
    `[0:v]format=yuv420p${o.noise ? ',noise=alls=6:allf=t' : ''}[bg];` +
    `[1:v]format=yuv420p[box];[bg][box]overlay=x='${x}':y=${y}:eval=frame,format=yuv420p[out]`;
  const tmp = `${file}.part.mp4`;
  const { ffmpeg } = findFfmpeg();
  const result = spawnSync(
    ffmpeg,
    [
      '-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', `smptehdbars=size=${o.width}x${o.height}:rate=${o.fps}:duration=${o.seconds},hue=s=0.5`,
      '-f', 'lavfi', '-i', `color=c=white:size=${box}x${box}:rate=${o.fps}:duration=${o.seconds}`,
      '-filter_complex', filter, '-map', '[out]',
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p',
      '-g', String(o.gop), '-keyint_min', String(o.gop), '-sc_threshold', '0', '-bf', '0',
      '-t', String(o.seconds), tmp,
    ],
    { encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`ffmpeg could not generate ${name}: ${result.stderr}`);
  renameSync(tmp, file);
  return file;
}
