import type { FaceBox } from './face-engine.js';

/** The bystander faces of one analysed frame (analysis-frame pixels, possibly none), as the face stage found them. */
export interface BystanderSighting {
  at: number;
  boxes: readonly FaceBox[];
}

export interface BystanderLogOptions {
  /** How long a frame's boxes are kept, ms: at least the longest clip plus its pre-roll (default 15 min). */
  keepMs?: number;
  /** At most this many frames per camera (default 4 000: 30 min at 2 fps). */
  maxFrames?: number;
}

/**
 * Where the face stage leaves, for every live frame it analysed of a watched camera (one whose clips are
 * blurred), the boxes of the faces that belong to nobody enrolled, so that a clip can be blurred once it
 * has ended (see BystanderClipSink). Boxes only: no pixels, no descriptors, RAM only, bounded per camera by
 * age and count. Frames of cameras not watched are not recorded, and the face stage does not even work
 * out their bystanders.
 */
export class BystanderLog {
  readonly #keepMs: number;
  readonly #maxFrames: number;
  readonly #watched = new Map<string, { analysis: { width: number; height: number } }>();
  readonly #frames = new Map<string, BystanderSighting[]>();

  constructor(options: BystanderLogOptions = {}) {
    this.#keepMs = options.keepMs ?? 15 * 60_000;
    this.#maxFrames = options.maxFrames ?? 4_000;
  }

  /** Starts (or, with `analysis` undefined, stops) keeping a camera's bystanders; its analysis frame size maps the boxes onto its clips. */
  watch(cameraId: string, analysis: { width: number; height: number } | undefined): void {
    if (analysis !== undefined) {
      this.#watched.set(cameraId, { analysis: { width: analysis.width, height: analysis.height } });
      return;
    }
    this.#watched.delete(cameraId);
    this.#frames.delete(cameraId);
  }

  /** The watched camera's analysis frame size, or undefined when its clips are not blurred. */
  watching(cameraId: string): { analysis: { width: number; height: number } } | undefined {
    return this.#watched.get(cameraId);
  }

  get watchedCount(): number {
    return this.#watched.size;
  }

  /** Records one analysed frame of a watched camera; `boxes` may be empty (the frame was checked and held no bystander). */
  record(cameraId: string, at: number, boxes: readonly FaceBox[]): void {
    if (!this.#watched.has(cameraId)) return;
    const list = this.#frames.get(cameraId) ?? [];
    list.push({ at, boxes: boxes.map((b) => ({ ...b })) });
    while (list.length > this.#maxFrames || (list.length > 0 && at - list[0]!.at > this.#keepMs)) list.shift();
    this.#frames.set(cameraId, list);
  }

  /** The analysed frames of a camera (with or without bystanders) whose time lies in [from, to], oldest first. */
  between(cameraId: string, from: number, to: number): BystanderSighting[] {
    return (this.#frames.get(cameraId) ?? []).filter((s) => s.at >= from && s.at <= to);
  }

  /** Forgets the frames of a camera, or of all (face recognition withdrawn: no box outlives the permission). */
  forget(cameraId?: string): void {
    if (cameraId === undefined) this.#frames.clear();
    else this.#frames.delete(cameraId);
  }
}
