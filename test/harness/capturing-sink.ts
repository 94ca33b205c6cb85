import type { ClipMeta, ClipStream, ClipSummary, EventObjects, MediaSink, Snapshot } from '../../src/recording/sink.js';

export interface CapturedClip {
  meta: ClipMeta;
  summary: ClipSummary;
  bytes: Buffer;
  /** What the objects analyser saw during the clip's event (ClipMeta.settled), as a sealing sink records it. */
  objects: EventObjects | undefined;
}

/** A sink for tests: keeps every clip's bytes and every snapshot in memory, and lets tests wait for them. */
export class CapturingSink implements MediaSink {
  readonly clips: CapturedClip[] = [];
  readonly snapshots: Snapshot[] = [];
  readonly #waiters: Array<() => void> = [];

  async clip(clip: ClipStream): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of clip.body) chunks.push(chunk as Buffer);
    const summary = await clip.summary;
    this.clips.push({ meta: clip.meta, summary, bytes: Buffer.concat(chunks), objects: await clip.meta.settled });
    this.#notify();
  }

  snapshot(snapshot: Snapshot): Promise<void> {
    this.snapshots.push(snapshot);
    this.#notify();
    return Promise.resolve();
  }

  /** Resolves once `predicate` holds, checked after every clip or snapshot; rejects after `timeoutMs`. */
  async until(predicate: (sink: CapturingSink) => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms: ${this.clips.length} clip(s), ${this.snapshots.length} snapshot(s)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}
