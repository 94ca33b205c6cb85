import { spawn } from 'node:child_process';
import type { BystanderSighting } from '../analysis/faces/bystander-log.js';
import type { FaceBox } from '../analysis/faces/face-engine.js';
import { analysisFilter, frameBytes } from '../cameras/ffmpeg-args.js';
import { StderrTail } from '../cameras/ffmpeg-errors.js';
import type { AnalysisFrame } from '../cameras/frame.js';
import { RawFrameReader } from '../cameras/raw-frame-reader.js';
import { CamveilError } from '../errors.js';
import { redactText } from '../redact.js';

/**
 * Looks for bystanders' faces on a clip's own frames. Returns the faces that belong to nobody enrolled, or
 * undefined when the gate does not allow recognition on the camera now (no model was called).
 */
export type FrameFaceCheck = (cameraId: string, frame: AnalysisFrame) => Promise<readonly FaceBox[] | undefined>;

export interface ClipFaceScanOptions {
  ffmpegPath: string;
  cameraId: string;
  eventId: string;
  /** The analysis size of the camera: boxes come back in these coordinates, as the live face stage's do. */
  analysis: { width: number; height: number };
  /** Frames looked at per second of clip. */
  fps: number;
  /** The clip's first frame in the hub's clock (ClipMeta.startedAt): frame n is at `startedAt + n / fps`. */
  startedAt: number;
  check: FrameFaceCheck;
  /** Aborting kills ffmpeg and rejects the scan. */
  signal?: AbortSignal;
}

export interface ClipFaceScan {
  /** Every frame looked at, with its bystanders' boxes (possibly none). */
  frames: BystanderSighting[];
  /** False when the gate refused recognition part-way: the frames from then on were not looked at. */
  complete: boolean;
}

/** The ffmpeg arguments of scanClipFaces: the clip from stdin, sampled and letterboxed like the live analysis stream. */
export function clipScanArgs(analysis: ClipFaceScanOptions['analysis'], fps: number): string[] {
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'error',
    '-f', 'mp4', '-i', 'pipe:0',
    '-map', '0:v:0', '-an', '-sn', '-dn',
    '-vf', analysisFilter({ ...analysis, fps }),
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
  ];
}

/**
 * Decodes a clip held in RAM (fragmented MP4) through ffmpeg pipes — nothing touches the disk — into frames
 * at the analysis size, `fps` a second, and asks `check` about each in turn (ffmpeg is paused while a
 * frame is checked, so at most a frame or two is held). This is what makes clip blurring independent of
 * the hub's load: the live face stage drops frames when it is behind, this pass never does; it only takes
 * longer. The fps filter emits frames at a constant rate from the clip's first frame, so frame n's time is
 * `startedAt + n / fps` in the clip's own timeline.
 *
 * Rejects with a CamveilError when ffmpeg fails or a check fails: the caller must then withhold the clip.
 */
export function scanClipFaces(clip: Buffer, o: ClipFaceScanOptions): Promise<ClipFaceScan> {
  const where = `camera ${o.cameraId}, clip ${o.eventId}`;
  return new Promise<ClipFaceScan>((resolve, reject) => {
    const frames: BystanderSighting[] = [];
    const stderr = new StderrTail();
    const child = spawn(o.ffmpegPath, clipScanArgs(o.analysis, o.fps), { stdio: ['pipe', 'pipe', 'pipe'] });
    let index = 0;
    let refused = false;
    let failure: CamveilError | undefined;
    let checking: Promise<void> = Promise.resolve();
    let settled = false;

    const fail = (error: CamveilError): void => {
      failure ??= error;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const onAbort = (): void => fail(new CamveilError('CAMVEIL_E_INTERNAL', `${where}: the face scan was aborted`, { where }));

    const reader = new RawFrameReader(frameBytes({ ...o.analysis, fps: o.fps }), (data) => {
      const n = index++;
      if (refused || failure !== undefined) return;
      const frame: AnalysisFrame = {
        cameraId: o.cameraId,
        at: o.startedAt + (n * 1000) / o.fps,
        seq: n,
        mediaMs: Math.round((n * 1000) / o.fps),
        width: o.analysis.width,
        height: o.analysis.height,
        data,
      };
      // One frame at a time: ffmpeg waits (its stdout paused) while the face stage looks.
      child.stdout.pause();
      checking = checking
        .then(async () => {
          if (refused || failure !== undefined) return;
          const boxes = await o.check(o.cameraId, frame);
          if (boxes === undefined) refused = true;
          else frames.push({ at: frame.at, boxes: [...boxes] });
        })
        .catch((error: unknown) => {
          fail(new CamveilError('CAMVEIL_E_INTERNAL', `${where}: a frame could not be checked for faces (${error instanceof Error ? error.message : String(error)})`, { where, cause: error }));
        })
        .finally(() => {
          if (!child.stdout.destroyed) child.stdout.resume();
        });
    });

    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
      // Aborted or failed: say so now, even if a check never answers.
      if (failure !== undefined) return reject(failure);
      void checking.then(() => {
        if (failure !== undefined) return reject(failure);
        if (spawnError !== undefined) {
          return reject(new CamveilError('CAMVEIL_E_FFMPEG_MISSING', `${where}: ffmpeg could not be started for the face scan (${spawnError.message})`, { where, cause: spawnError }));
        }
        if (code !== 0 && !refused) {
          const reason = redactText(stderr.text.trim().split('\n').at(-1) ?? 'no output').slice(0, 200);
          return reject(new CamveilError('CAMVEIL_E_INTERNAL', `${where}: the face scan's decoder failed (ffmpeg ${signal ?? `exit code ${code}`}: ${reason})`, { where }));
        }
        resolve({ frames, complete: !refused });
      });
    };

    child.once('error', (error) => finish(null, null, error));
    child.once('close', (code, signal) => finish(code, signal));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdout.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      // Refused by the gate: no more frames are wanted.
      if (refused) child.kill('SIGKILL');
    });
    // ffmpeg closing stdin early (killed, or it failed) makes the write fail with EPIPE: its exit says why.
    child.stdin.on('error', () => undefined);
    child.stdin.end(clip);
    if (o.signal !== undefined) {
      if (o.signal.aborted) onAbort();
      else o.signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}
