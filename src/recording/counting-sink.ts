import type { ClipStream, MediaSink, Snapshot } from './sink.js';

export interface CountedClip {
  eventId: string;
  cameraId: string;
  startedAt: number;
  durationMs: number;
  bytes: number;
  endedBy: string;
}

/**
 * A sink that reads every clip to the end, counts it and lets the bytes go: nothing is stored anywhere.
 * The service uses it while no encrypted store is configured, and the demo reports what it sees.
 */
export class CountingSink implements MediaSink {
  readonly clips: CountedClip[] = [];
  readonly snapshots: Array<Omit<Snapshot, 'jpeg'> & { bytes: number }> = [];
  readonly #onClip: ((clip: CountedClip) => void) | undefined;

  constructor(onClip?: (clip: CountedClip) => void) {
    this.#onClip = onClip;
  }

  async clip(clip: ClipStream): Promise<void> {
    let bytes = 0;
    for await (const chunk of clip.body) bytes += (chunk as Buffer).length;
    const summary = await clip.summary;
    const counted = {
      eventId: clip.meta.eventId,
      cameraId: clip.meta.cameraId,
      startedAt: clip.meta.startedAt,
      durationMs: summary.durationMs,
      bytes,
      endedBy: summary.endedBy,
    };
    this.clips.push(counted);
    this.#onClip?.(counted);
  }

  snapshot(snapshot: Snapshot): Promise<void> {
    const { jpeg, ...rest } = snapshot;
    this.snapshots.push({ ...rest, bytes: jpeg.length });
    return Promise.resolve();
  }
}
