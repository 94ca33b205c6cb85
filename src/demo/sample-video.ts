import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { findFfmpeg } from '../cameras/ffmpeg-binary.js';
import { CamveilError } from '../errors.js';

const require = createRequire(import.meta.url);

/** Seconds each photo is held still, then panned/zoomed: the stills give quiet periods, pans and cuts give motion. */
export const STILL_SECONDS = 7;
export const PAN_SECONDS = 3;
const FPS = 15;
const WIDTH = 1280;
const HEIGHT = 720;

/** The demo photos npm installs with `@vladmandic/face-api` (real faces, MIT licence). */
export function demoPhotos(): string[] {
  const dir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
  const photos = readdirSync(dir)
    .filter((f) => /^sample\d+\.jpg$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
  if (photos.length === 0) throw new CamveilError('CAMVEIL_E_INTERNAL', `no demo photos found in ${dir}: run npm ci`);
  return photos;
}

/** Pure: the ffmpeg arguments that turn photos into the looping sample camera video. */
export function sampleVideoArgs(photos: readonly string[], output: string): string[] {
  const seconds = STILL_SECONDS + PAN_SECONDS;
  const stillFrames = STILL_SECONDS * FPS;
  const inputs = photos.flatMap((p) => ['-loop', '1', '-framerate', String(FPS), '-t', String(seconds), '-i', p]);
  // Each photo: cropped to 16:9, still for STILL_SECONDS, then a slow zoom and pan (alternating direction).
  const chains = photos.map((_, i) => {
    const dir = i % 2 === 0 ? '+' : '-';
    return (
      `[${i}:v]scale=${WIDTH}:${HEIGHT}:force_original_aspect_ratio=increase,crop=${WIDTH}:${HEIGHT},` +
      `zoompan=z='if(lt(on,${stillFrames}),1,1+(on-${stillFrames})*0.005)':` +
      `x='iw/2-(iw/zoom/2)${dir}if(lt(on,${stillFrames}),0,(on-${stillFrames})*3)':y='ih/2-(ih/zoom/2)':` +
      `d=1:s=${WIDTH}x${HEIGHT}:fps=${FPS},setsar=1,format=yuv420p[v${i}]`
    );
  });
  const concat = `${photos.map((_, i) => `[v${i}]`).join('')}concat=n=${photos.length}:v=1:a=0[out]`;
  return [
    '-hide_banner', '-loglevel', 'error', '-y',
    ...inputs,
    '-filter_complex', [...chains, concat].join(';'),
    '-map', '[out]',
    // A keyframe every second, no B-frames: like an IP camera's main stream.
    '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'main', '-pix_fmt', 'yuv420p',
    '-g', String(FPS), '-keyint_min', String(FPS), '-sc_threshold', '0', '-bf', '0', '-b:v', '2M',
    '-movflags', '+faststart',
    output,
  ];
}

/**
 * Returns the sample camera video, generating it on first use (about a minute of video, ~10 s of work).
 * It is made only from public demo photos, not from any household's camera.
 */
export async function ensureSampleVideo(cacheDir: string): Promise<string> {
  const output = path.join(cacheDir, 'sample-camera.mp4');
  if (existsSync(output)) return output;
  mkdirSync(cacheDir, { recursive: true });
  const partial = path.join(cacheDir, `sample-camera.${process.pid}.part.mp4`);
  const { ffmpeg } = findFfmpeg();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(ffmpeg, sampleVideoArgs(demoPhotos(), partial), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new CamveilError('CAMVEIL_E_INTERNAL', `ffmpeg could not build the sample video (exit ${code}): ${stderr.trim()}`));
    });
  }).catch((error: unknown) => {
    rmSync(partial, { force: true });
    throw error;
  });
  renameSync(partial, output);
  return output;
}
