import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { matchFfmpegFailure, StderrTail } from '../cameras/ffmpeg-errors.js';
import { CamveilError } from '../errors.js';
import type { Logger } from '../log.js';
import { redactText } from '../redact.js';
import { CLIP_BLUR_OUTPUT } from './clip-blur-filter.js';
import type { ClipMeta } from './sink.js';

export { clipBlurFilter, regionsFromObservations, DEFAULT_HOLD_MS, MAX_CLIP_BLUR_REGIONS } from './clip-blur-filter.js';
export type { FaceObservation, FrameSize, TimedRegion } from './clip-blur-filter.js';

/**
 * The H.264 settings of the re-encode: those of the masked ingest (ffmpeg-args.ts), so a blurred clip looks
 * and costs like a masked one. A keyframe every second keeps the output's fragments about a second long,
 * as the recorder's are.
 */
export const CLIP_ENCODER_ARGS: readonly string[] = [
  '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-crf', '23', '-force_key_frames', 'expr:gte(t,n_forced*1)',
];

/** Fragmented MP4 that can be written to a pipe: the moov first (empty), then one moof+mdat per keyframe. */
export const FRAGMENTED_MP4_ARGS: readonly string[] = ['-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof'];

export interface BlurClipOptions {
  ffmpegPath: string;
  logger: Logger;
  /** Names the clip in errors and logs (ids only: no names, no URLs). */
  clip: Pick<ClipMeta, 'cameraId' | 'eventId'>;
  /** Aborting kills ffmpeg; `body` is then destroyed and `done` rejects. */
  signal?: AbortSignal;
}

export interface BlurredClip {
  /** Fragmented MP4 (init segment first) with the regions pixelated; destroyed with a CamveilError on failure. */
  body: Readable;
  /** Resolves once ffmpeg has exited cleanly and its last byte is in `body`; rejects with the same error as `body`. */
  done: Promise<{ bytes: number }>;
}

/** The ffmpeg arguments of blurClip; exported for the benchmark, which runs the same command. */
export function blurClipArgs(filter: string): string[] {
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'error',
    '-f', 'mp4', '-i', 'pipe:0',
    '-filter_complex', filter, '-map', `[${CLIP_BLUR_OUTPUT}]`,
    // The ingest records video only today; should a clip carry audio, it is passed through untouched.
    '-map', '0:a?', '-c:a', 'copy',
    // Frames keep their own timestamps: a camera's frame rate wanders, and mp4 would otherwise get a
    // constant rate with frames duplicated or dropped to fit it.
    '-vsync', 'passthrough',
    ...CLIP_ENCODER_ARGS,
    ...FRAGMENTED_MP4_ARGS,
    'pipe:1',
  ];
}

/**
 * Re-encodes a clip (fragmented MP4 from the recorder) through ffmpeg with `filter` (see clipBlurFilter),
 * through pipes only: the clip goes in on stdin and comes out on stdout, and no byte of it touches the
 * disk. Backpressure holds both ways: a slow reader of `body` stops ffmpeg's output, which stops it reading
 * `input`, which pauses the recorder's stream.
 *
 * On failure — ffmpeg exits non-zero (input that is not MP4, a bad filter), `input` errors, the reader
 * destroys `body`, or `signal` aborts — ffmpeg is killed, `input` is destroyed (so the recorder frees its
 * memory) and `body` is destroyed with a CamveilError naming the camera, the clip and ffmpeg's last words:
 * CAMVEIL_E_CAMERA_NOT_VIDEO when ffmpeg could not read the clip, CAMVEIL_E_INTERNAL otherwise.
 */
export function blurClip(input: Readable, filter: string, opts: BlurClipOptions): BlurredClip {
  const where = `camera ${opts.clip.cameraId}, clip ${opts.clip.eventId}`;
  const body = new PassThrough();
  const stderr = new StderrTail();
  const child = spawn(opts.ffmpegPath, blurClipArgs(filter), { stdio: ['pipe', 'pipe', 'pipe'] });
  let bytes = 0;
  let failure: CamveilError | undefined;
  let settled = false;

  const fail = (error: CamveilError): void => {
    failure ??= error;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const onAbort = (): void => fail(new CamveilError('CAMVEIL_E_INTERNAL', `${where}: bystander blurring was aborted`, { where }));

  const done = new Promise<{ bytes: number }>((resolve, reject) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      input.unpipe(child.stdin);
      if (failure === undefined && spawnError === undefined && code === 0) {
        body.end();
        resolve({ bytes });
        return;
      }
      const error = failure ?? describeExit(where, code, signal, stderr.text, spawnError);
      opts.logger.warn({ camera: opts.clip.cameraId, event: opts.clip.eventId, code: error.code, exitCode: code }, 'bystander blurring of a clip failed');
      input.destroy();
      body.destroy(error);
      reject(error);
    };
    child.once('error', (error) => finish(null, null, error));
    child.once('close', (code, signal) => finish(code, signal));
  });
  // The caller may only watch `body`; the rejection is still delivered to whoever awaits `done`.
  done.catch(() => undefined);

  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdout.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  child.stdout.pipe(body, { end: false });
  // ffmpeg closing stdin early (it failed, or was killed) makes writes fail with EPIPE: its exit says why.
  child.stdin.on('error', () => undefined);
  input.on('error', (error) => fail(new CamveilError('CAMVEIL_E_INTERNAL', `${where}: the clip stream failed before blurring (${error.message})`, { where, cause: error })));
  input.pipe(child.stdin);
  // The reader gave up: ffmpeg's work is no longer wanted.
  body.on('close', () => {
    if (!settled && !body.writableFinished) fail(new CamveilError('CAMVEIL_E_INTERNAL', `${where}: the blurred clip's reader went away`, { where }));
  });

  if (opts.signal !== undefined) {
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }
  return { body, done };
}

function describeExit(where: string, code: number | null, signal: NodeJS.Signals | null, stderr: string, spawnError?: Error): CamveilError {
  if (spawnError !== undefined) {
    return new CamveilError('CAMVEIL_E_FFMPEG_MISSING', `${where}: ffmpeg could not be started for bystander blurring (${spawnError.message})`, { where, cause: spawnError });
  }
  const exit = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
  const reason = redactText(stderr.trim().split('\n').filter((l) => l.trim() !== '').at(-1) ?? 'no output').slice(0, 200);
  // Of ffmpeg's failure table only "not a usable video" can apply to bytes piped in from the recorder; the
  // network rules (credentials, unreachable host) would only match their words by accident.
  if (matchFfmpegFailure(stderr)?.code === 'CAMVEIL_E_CAMERA_NOT_VIDEO') {
    return new CamveilError('CAMVEIL_E_CAMERA_NOT_VIDEO', `${where}: bystander blurring failed: the clip is not a usable video (ffmpeg ${exit}: ${reason})`, { where });
  }
  return new CamveilError('CAMVEIL_E_INTERNAL', `${where}: bystander blurring failed (ffmpeg ${exit}: ${reason})`, { where });
}
