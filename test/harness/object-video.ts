import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { DEMO } from '../unit/face-fixtures.js';
import { MEDIA_DIR } from './video.js';

/** What walks (or drives) through a walk video: a cut-out from a real photo, as ffmpeg's crop of it. */
interface Sprite {
  photo: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A person from a face-api demo photo (sample6.jpg, MIT licence; the woman on the right, head to knees). */
export const PERSON_CROP: Sprite = { photo: path.join(DEMO, 'sample6.jpg'), x: 1400, y: 87, width: 520, height: 1450 };

/** A car seen from the side (test/fixtures/objects/car-side.jpg, MIT licence: see the README there). */
export const CAR_CROP: Sprite = { photo: fileURLToPath(new URL('../fixtures/objects/car-side.jpg', import.meta.url)), x: 0, y: 0, width: 450, height: 200 };

export interface WalkVideoOptions {
  /** Total length in seconds (the camera loops it). */
  seconds: number;
  /** When the person enters at the left edge, and when they have left at the right edge, in seconds. */
  enterAt: number;
  leaveAt: number;
  /** What goes through (default the person). */
  sprite?: 'person' | 'car';
  /** Its height as a fraction of the frame's (default 0.6). */
  personHeight?: number;
  /** Where its top is, as a fraction of the frame's height (default 0.25). */
  top?: number;
  /**
   * Also a white square (a tenth of the frame's height) sliding to and fro along the bottom strip
   * (from 0.88 of the height down) for the whole video: motion that is not an object.
   */
  bottomBox?: boolean;
}

/** The frame size and rate of walk videos. */
export const WALK = { width: 1280, height: 720, fps: 10 } as const;

/**
 * Generates (once, then cached) an H.264 MP4 of a still, softly noisy background through which a real
 * person (PERSON_CROP) walks from left to right between `enterAt` and `leaveAt`: a camera scene whose
 * only object is that person. Returns the path and where the person is at a given second (frame pixels).
 */
export function walkVideo(options: WalkVideoOptions): { file: string; personAt: (second: number) => { x: number; y: number; width: number; height: number } | undefined } {
  const o = { personHeight: 0.6, top: 0.25, sprite: 'person' as const, ...options };
  const c = o.sprite === 'car' ? CAR_CROP : PERSON_CROP;
  const h = Math.round(WALK.height * o.personHeight);
  const w = Math.round((h * c.width) / c.height);
  const y = Math.round(WALK.height * o.top);
  const speed = (WALK.width + w) / (o.leaveAt - o.enterAt);
  const xAt = (t: number): number => -w + (t - o.enterAt) * speed;
  const personAt = (t: number) => (t < o.enterAt || t >= o.leaveAt ? undefined : { x: xAt(t), y, width: w, height: h });
  const name = `walk-${o.sprite}-${o.seconds}s-${o.enterAt}-${o.leaveAt}-${o.personHeight}-${o.top}${o.bottomBox === true ? '-box' : ''}.mp4`;
  const file = path.join(MEDIA_DIR, name);
  if (existsSync(file)) return { file, personAt };
  mkdirSync(MEDIA_DIR, { recursive: true });
  // Off the picture (x = -2w) outside [enterAt, leaveAt).
  const x = `if(between(t,${o.enterAt},${o.leaveAt}),${-w}+(t-${o.enterAt})*${speed.toFixed(3)},${-2 * w})`;
  const side = Math.round(WALK.height / 10);
  const boxInput = o.bottomBox === true ? ['-f', 'lavfi', '-i', `color=c=white:size=${side}x${side}:rate=${WALK.fps}:duration=${o.seconds}`] : [];
  const withBox = o.bottomBox === true ? `[walk];[walk][2:v]overlay=x='(W-${side})*abs(mod(t/6,2)-1)':y=${Math.round(WALK.height * 0.88)}:eval=frame` : '';
  const filter =
    `[0:v]format=yuv420p,noise=alls=4:allf=t[bg];` +
    `[1:v]crop=${c.width}:${c.height}:${c.x}:${c.y},scale=${w}:${h},format=yuv420p[sprite];` +
    `[bg][sprite]overlay=x='${x}':y=${y}:eval=frame${withBox},format=yuv420p[out]`;
  const tmp = `${file}.part.mp4`;
  const result = spawnSync(
    findFfmpeg().ffmpeg,
    [
      '-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', `color=c=0x6b7a70:size=${WALK.width}x${WALK.height}:rate=${WALK.fps}:duration=${o.seconds}`,
      '-loop', '1', '-framerate', String(WALK.fps), '-t', String(o.seconds), '-i', c.photo,
      ...boxInput,
      '-filter_complex', filter, '-map', '[out]',
      '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
      '-g', String(WALK.fps), '-keyint_min', String(WALK.fps), '-sc_threshold', '0', '-bf', '0',
      '-t', String(o.seconds), tmp,
    ],
    { encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`ffmpeg could not generate ${name}: ${result.stderr}`);
  renameSync(tmp, file);
  return { file, personAt };
}
