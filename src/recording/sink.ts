import type { Readable } from 'node:stream';
import type { Box } from '../analysis/box.js';
import type { ObjectLabel } from '../policy/vocabulary.js';

/** What the objects analyser saw during an event: known once the event has closed. */
export interface EventObjects {
  /** The labels seen, in priority order (person, animal, vehicle). */
  labels: ObjectLabel[];
  /** The best score of each label seen. */
  scores: Partial<Record<ObjectLabel, number>>;
  /** The object the snapshot shows (the best of the first label), its box in the snapshot's pixels. */
  snapshotObject?: { label: ObjectLabel; cocoClass: string; score: number; box: Box };
}

/** What is known about a clip when it starts. */
export interface ClipMeta {
  eventId: string;
  cameraId: string;
  /** Wall-clock time of the first frame in the clip (pre-roll included), ms since the epoch. */
  startedAt: number;
  /** When motion was first seen, ms since the epoch. */
  motionAt: number;
  contentType: 'video/mp4';
  /**
   * Settles once the clip's event has closed and its snapshot has been handed to the sink (or withheld):
   * with what the objects analyser saw, or undefined when it did not look. Always settles (the pipeline
   * bounds its wait); a sink that writes an event record waits for it so the record names the snapshot.
   */
  settled?: Promise<EventObjects | undefined>;
}

/** Known once the clip has ended. */
export interface ClipSummary {
  durationMs: number;
  bytes: number;
  /** Why the clip ended. */
  endedBy: 'motion-stopped' | 'max-length' | 'stream-lost' | 'shutdown' | 'memory-ceiling';
}

export interface ClipStream {
  meta: ClipMeta;
  /** Fragmented MP4 bytes (init segment first). Flows with backpressure; never touches disk. */
  body: Readable;
  /** Resolves when the last byte has been pushed into `body`. */
  summary: Promise<ClipSummary>;
}

export interface Snapshot {
  eventId: string;
  cameraId: string;
  /** Time of the frame, ms since the epoch. */
  at: number;
  contentType: 'image/jpeg';
  width: number;
  height: number;
  jpeg: Buffer;
}

/**
 * Where finished media goes. The encryption/upload work implements this; until then the demo sink
 * reports sizes. Implementations must consume `clip.body` (or destroy it) so the recorder's memory is freed.
 */
export interface MediaSink {
  clip(clip: ClipStream): Promise<void>;
  snapshot(snapshot: Snapshot): Promise<void>;
}
