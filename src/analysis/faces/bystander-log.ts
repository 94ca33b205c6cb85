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
 * Where the face stage leaves, for every live frame it analysed, the boxes of the faces that belong to
 * nobody enrolled, so that a clip can be blurred once it has ended (see BystanderClipSink). Boxes only: no
 * pixels, no descriptors, RAM only, bounded per camera by age and count.
 */
export class BystanderLog {
  readonly #keepMs: number;
  readonly #maxFrames: number;
  readonly #frames = new Map<string, BystanderSighting[]>();

  constructor(options: BystanderLogOptions = {}) {
    this.#keepMs = options.keepMs ?? 15 * 60_000;
    this.#maxFrames = options.maxFrames ?? 4_000;
  }

  /** Records one analysed frame of a camera; `boxes` may be empty (the frame was checked and held no bystander). */
  record(cameraId: string, at: number, boxes: readonly FaceBox[]): void {
    const list = this.#frames.get(cameraId) ?? [];
    list.push({ at, boxes: boxes.map((b) => ({ ...b })) });
    while (list.length > this.#maxFrames || (list.length > 0 && at - list[0]!.at > this.#keepMs)) list.shift();
    this.#frames.set(cameraId, list);
  }

  /** The analysed frames of a camera (with or without bystanders) whose time lies in [from, to], oldest first. */
  between(cameraId: string, from: number, to: number): BystanderSighting[] {
    return (this.#frames.get(cameraId) ?? []).filter((s) => s.at >= from && s.at <= to);
  }

  /** Forgets a camera, or everything (face recognition withdrawn: no box outlives the permission). */
  forget(cameraId?: string): void {
    if (cameraId === undefined) {
      this.#frames.clear();
      return;
    }
    this.#frames.delete(cameraId);
  }
}
