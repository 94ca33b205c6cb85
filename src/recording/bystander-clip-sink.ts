import { Readable } from 'node:stream';
import type { BystanderLog, BystanderSighting } from '../analysis/faces/bystander-log.js';
import type { FaceBox } from '../analysis/faces/face-engine.js';
import { CamveilError } from '../errors.js';
import type { Logger } from '../log.js';
import { blurClip, clipBlurFilter, DEFAULT_HOLD_MS, regionsFromObservations } from './clip-blur.js';
import { scanClipFaces, type FrameFaceCheck } from './clip-face-scan.js';
import { videoSizeOfInit } from './fmp4.js';
import type { ClipStream, MediaSink, Snapshot } from './sink.js';

export interface BystanderClipSinkOptions {
  /** Where the blurred (or untouched) clips and every snapshot go: normally the sealing sink. */
  inner: MediaSink;
  /** The face stage's bystanders; its watched cameras are those whose clips are blurred, other cameras' clips pass as they are. */
  log: Pick<BystanderLog, 'watching' | 'between'>;
  ffmpegPath: string;
  logger: Logger;
  holdMs?: number;
  /** Resolves once the face stage has no frame waiting or in its worker (FaceStage.idle). */
  settle?: () => Promise<void>;
  /** After a clip ends, how long to wait for `settle` at most (default 5 000 ms). */
  settleMs?: number;
  /**
   * Looks for bystanders on a frame of the clip (FaceStage.bystanderBoxes: asks the gate right before the
   * model). Every clip of a blurring camera is decoded and checked `scanFps` times a second, so no frame
   * leaves the hub unlooked-at however many live frames the face stage dropped. Without it only the live
   * stage's frames count (tests of the planner).
   */
  scan?: FrameFaceCheck;
  /** Frames of the clip checked per second (default: enough that no gap exceeds the hold, and at least 2). */
  scanFps?: number;
  /** The scan of a clip must finish within max(this, 4 × the clip's length) or the clip is withheld (default 60 000 ms). */
  scanTimeoutMs?: number;
  /** Told what became of each clip of a blurring camera. */
  onOutcome?: (cameraId: string, outcome: 'blurred' | 'unchanged' | 'withheld') => void;
}

/** Longest gap between two analysed frames across which a face is followed from one to the other. */
export const MAX_FOLLOW_MS = 3_000;

const centre = (b: FaceBox): { x: number; y: number } => ({ x: b.x + b.width / 2, y: b.y + b.height / 2 });

/** The smallest box holding both. */
function hull(a: FaceBox, b: FaceBox): FaceBox {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}

/** The box in `boxes` nearest to `box` (by centre), with the distance. */
function nearest(box: FaceBox, boxes: readonly FaceBox[]): { box: FaceBox; d: number } | undefined {
  const c = centre(box);
  let best: { box: FaceBox; d: number } | undefined;
  for (const other of boxes) {
    const o = centre(other);
    const d = Math.hypot(o.x - c.x, o.y - c.y);
    if (best === undefined || d < best.d) best = { box: other, d };
  }
  return best;
}

/**
 * Where to blur, from the face stage's analysed frames of a clip (with and without bystanders), as
 * observations for regionsFromObservations. Pure. Every rule errs towards blurring more:
 * - every bystander box is held `holdMs` either side of its frame;
 * - a box is followed to the next analysed frame, up to MAX_FOLLOW_MS later, that has a box which is its
 *   mutual nearest (centres less than two box widths apart), so a face that moved, or that the detector
 *   missed in a frame or two, stays covered: the hull of the two boxes is repeated every `holdMs / 2`
 *   across the gap (the planner merges the repeats into one rectangle);
 * - faces are only looked for in frames with motion, so the still pre- and post-roll were never analysed;
 *   but nothing moved there, so the boxes seen within MAX_FOLLOW_MS of the clip's first (last) analysed
 *   frame are carried back to its start (on to its end).
 */
export function blurObservations(frames: readonly BystanderSighting[], startedAt: number, endedAt: number, holdMs: number): BystanderSighting[] {
  const out = frames.filter((f) => f.boxes.length > 0);
  frames.forEach((a, i) => {
    for (const box of a.boxes) {
      for (const b of frames.slice(i + 1)) {
        if (b.at - a.at > MAX_FOLLOW_MS) break;
        const next = nearest(box, b.boxes);
        if (next === undefined || next.d >= 2 * Math.max(box.width, next.box.width) || nearest(next.box, a.boxes)?.box !== box) continue;
        const covered = hull(box, next.box);
        for (let t = a.at + holdMs / 2; t < b.at; t += holdMs / 2) out.push({ at: t, boxes: [covered] });
        break;
      }
    }
  });
  const inClip = frames.filter((f) => f.at >= startedAt && f.at <= endedAt);
  const first = inClip[0];
  const last = inClip.at(-1);
  // Each such frame's boxes from the clip's start up to the frame itself (from the frame on to the end).
  for (const f of inClip.filter((f) => first !== undefined && f.at - first.at <= MAX_FOLLOW_MS && f.boxes.length > 0)) {
    for (let t = f.at - holdMs; t > startedAt - holdMs; t -= holdMs) out.push({ at: Math.max(t, startedAt), boxes: f.boxes });
  }
  for (const f of inClip.filter((f) => last !== undefined && last.at - f.at <= MAX_FOLLOW_MS && f.boxes.length > 0)) {
    for (let t = f.at + holdMs; t < endedAt + holdMs; t += holdMs) out.push({ at: Math.min(t, endedAt), boxes: f.boxes });
  }
  return out.sort((p, q) => p.at - q.at);
}

/**
 * Bystander blurring for clips: for a camera with `bystanderBlurClips`, the clip is held in RAM until it
 * has ended (its size is already bounded by the recorder's memory ceiling), the face stage's bystander
 * boxes for its time span are read from the BystanderLog, and the clip is re-encoded with those faces
 * pixelated (blurClip: ffmpeg through pipes, never on disk) before it reaches the inner sink. A clip in
 * which no bystander was seen goes on byte for byte. If blurring fails the clip is withheld and logged:
 * a clip with bystanders is never passed on unblurred. Snapshots pass straight through (the camera
 * pipeline blurs them itself).
 */
export class BystanderClipSink implements MediaSink {
  readonly #o: BystanderClipSinkOptions;

  constructor(options: BystanderClipSinkOptions) {
    this.#o = options;
  }

  snapshot(snapshot: Snapshot): Promise<void> {
    return this.#o.inner.snapshot(snapshot);
  }

  async clip(clip: ClipStream): Promise<void> {
    const camera = this.#o.log.watching(clip.meta.cameraId);
    if (camera === undefined) return this.#o.inner.clip(clip);
    const { cameraId, eventId } = clip.meta;
    const chunks: Buffer[] = [];
    for await (const chunk of clip.body) chunks.push(chunk as Buffer);
    const summary = await clip.summary;
    const end = clip.meta.startedAt + summary.durationMs;
    await this.#settle();
    const hold = this.#o.holdMs ?? DEFAULT_HOLD_MS;
    const bytes = Buffer.concat(chunks);
    chunks.length = 0;
    const mainSize = videoSizeOfInit(bytes);
    let scanned: readonly BystanderSighting[];
    try {
      scanned = await this.#scan(bytes, clip.meta, camera.analysis, summary.durationMs, hold);
    } catch (error) {
      this.#o.onOutcome?.(cameraId, 'withheld');
      this.#o.logger.warn({ camera: cameraId, event: eventId, err: error }, 'clip withheld: its frames could not be checked for bystanders');
      return;
    }
    const seen = [...this.#o.log.between(cameraId, clip.meta.startedAt - hold, end + hold), ...scanned].sort((a, b) => a.at - b.at);
    const sightings = blurObservations(seen, clip.meta.startedAt, end, hold);
    const filter =
      sightings.length === 0 || mainSize === undefined
        ? undefined
        : clipBlurFilter(regionsFromObservations(sightings, { clipStartMs: clip.meta.startedAt, analysisSize: camera.analysis, mainSize, holdMs: hold }), mainSize);
    if (sightings.length > 0 && mainSize === undefined) {
      this.#o.logger.warn({ camera: cameraId, event: eventId }, 'clip withheld: its video size could not be read, so its bystanders could not be blurred');
      this.#o.onOutcome?.(cameraId, 'withheld');
      return;
    }
    if (filter === undefined) {
      this.#o.onOutcome?.(cameraId, 'unchanged');
      return this.#o.inner.clip({ meta: clip.meta, body: Readable.from([bytes]), summary: Promise.resolve(summary) });
    }
    const blurred = blurClip(Readable.from([bytes]), filter, { ffmpegPath: this.#o.ffmpegPath, logger: this.#o.logger, clip: { cameraId, eventId } });
    // The inner sink must not keep a half-blurred clip: its body errors on failure, and the sealing
    // sink's writer discards an object whose body failed.
    const blurredSummary = blurred.done.then((d) => ({ ...summary, bytes: d.bytes }));
    // An inner sink that fails on the body never reads the summary: its rejection is handled below.
    blurredSummary.catch(() => undefined);
    const delivered = this.#o.inner.clip({ meta: clip.meta, body: blurred.body, summary: blurredSummary });
    try {
      await blurred.done;
      await delivered;
      this.#o.onOutcome?.(cameraId, 'blurred');
      this.#o.logger.info({ camera: cameraId, event: eventId, frames: sightings.length }, 'clip: bystanders blurred');
    } catch (error) {
      await delivered.catch(() => undefined);
      this.#o.onOutcome?.(cameraId, 'withheld');
      const e = error instanceof CamveilError ? error : undefined;
      this.#o.logger.warn({ camera: cameraId, event: eventId, code: e?.code, err: error }, 'clip withheld: bystander blurring failed');
    }
  }

  /**
   * The clip's own frames checked for bystanders (see ClipFaceScanOptions), or none without a `scan`.
   * Rejects when the scan fails or takes longer than its limit: the clip is then withheld.
   */
  async #scan(bytes: Buffer, meta: ClipStream['meta'], analysis: { width: number; height: number }, durationMs: number, holdMs: number): Promise<readonly BystanderSighting[]> {
    const check = this.#o.scan;
    if (check === undefined) return [];
    const limitMs = Math.max(this.#o.scanTimeoutMs ?? 60_000, 4 * durationMs);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), limitMs);
    try {
      const result = await scanClipFaces(bytes, {
        ffmpegPath: this.#o.ffmpegPath,
        cameraId: meta.cameraId,
        eventId: meta.eventId,
        analysis,
        fps: this.#o.scanFps ?? Math.max(2, Math.ceil(1000 / holdMs)),
        startedAt: meta.startedAt,
        check,
        signal: abort.signal,
      });
      if (!result.complete) this.#o.logger.info({ camera: meta.cameraId, event: meta.eventId, checked: result.frames.length }, 'clip: face recognition stopped being allowed part-way; the rest was not looked at');
      return result.frames;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until the face stage has finished the frames it holds (the clip's last seconds), or `settleMs` has passed. */
  async #settle(): Promise<void> {
    if (this.#o.settle === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#o.settleMs ?? 5_000);
    });
    await Promise.race([this.#o.settle(), timeout]);
    clearTimeout(timer);
  }
}
