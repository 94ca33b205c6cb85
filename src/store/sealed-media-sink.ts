import { isReportedWriteFailure, type ObjectStore } from './object-store.js';
import { newObjectId } from '../crypto/sealed-object.js';
import type { ByteSource } from '../crypto/age-stream.js';
import type { Manifest } from '../crypto/manifest.js';
import type { ObjectKind } from '../policy/vocabulary.js';
import type { Logger } from '../log.js';
import type { SealedPublisher } from '../publishing/sealed-publisher.js';
import type { ClipStream, EventObjects, MediaSink, Snapshot } from '../recording/sink.js';

export interface SealedMediaSinkOptions {
  /** Seals to the household, stores, and stages for upload (while uploads are on). */
  publisher: SealedPublisher;
  /** The store's event index; absent in stand-ins. */
  events?: Pick<ObjectStore, 'recordEvent'>;
  /** Asked per clip and snapshot: may this camera's media be kept on the hub (localRecording consent)? */
  mayRecord?: (cameraId: string) => { allowed: boolean; reason: string };
  /** Told when media was not kept because the gate said no. */
  onRefused?: (info: { cameraId: string; eventId: string; kind: ObjectKind; reason: string }) => void;
  /** Camera ids appear inside objects only as keyed pseudonyms. */
  cameraPseudonym: (cameraId: string) => string;
  /** The privacy-policy version in force, written into every manifest: the terms the media was captured under. */
  policyVersion: () => string;
  logger: Logger;
  /** Told about every object sealed and stored (for state and the demo). */
  onStored?: (info: { objectId: string; kind: ObjectKind; cameraId: string; eventId: string; bytes: number }) => void;
}

/** What the app learns about an event, sealed as its own small object once the clip has ended. */
export interface EventRecord {
  eventId: string;
  cameraPseudonym: string;
  motionAt: string;
  startedAt: string;
  durationMs: number;
  endedBy: string;
  clipObjectId: string;
  snapshotObjectId?: string;
  /** What the objects analyser saw (ClipMeta.settled): labels in priority order, best score per label. */
  labels?: EventObjects['labels'];
  scores?: EventObjects['scores'];
  /** The object the snapshot shows, its box in the snapshot's pixels. */
  snapshotObject?: EventObjects['snapshotObject'];
}

/**
 * The media sink that encrypts: each clip and snapshot is published (SealedPublisher: sealed with age to
 * the household's recipients as it streams, stored as ciphertext, staged for upload). Plaintext exists only
 * in this process's memory on its way into the cipher. A clip's length is only known at its end, while its
 * manifest leads the ciphertext, so each event also gets a small sealed `event` object: duration, why it
 * ended, and the clip's and snapshot's ids.
 */
export class SealedMediaSink implements MediaSink {
  readonly #o: SealedMediaSinkOptions;
  /** Snapshot object ids by event, until the event's record is sealed. */
  readonly #snapshots = new Map<string, string>();

  constructor(options: SealedMediaSinkOptions) {
    this.#o = options;
  }

  /**
   * A write failure the store has already reported (once per burst: a full disk) ends here: the clip is let
   * go (its body destroyed, so the recorder holds nothing) and the camera goes on; anything else rejects.
   */
  async clip(clip: ClipStream): Promise<void> {
    try {
      await this.#clip(clip);
    } catch (error) {
      clip.body.destroy();
      if (!isReportedWriteFailure(error)) throw error;
    }
  }

  async snapshot(snapshot: Snapshot): Promise<void> {
    try {
      await this.#snapshot(snapshot);
    } catch (error) {
      if (!isReportedWriteFailure(error)) throw error;
    }
  }

  async #clip(clip: ClipStream): Promise<void> {
    const { meta } = clip;
    const decision = this.#o.mayRecord?.(meta.cameraId);
    if (decision !== undefined && !decision.allowed) {
      // Nothing is kept: the clip's bytes are read and let go, so the recorder's memory is freed.
      for await (const _chunk of clip.body) void _chunk;
      this.#o.onRefused?.({ cameraId: meta.cameraId, eventId: meta.eventId, kind: 'clip', reason: decision.reason });
      return;
    }
    const objectId = newObjectId();
    const cameraPseudonym = this.#o.cameraPseudonym(meta.cameraId);
    await this.#publish(this.#manifest(objectId, 'clip', cameraPseudonym, meta.startedAt, meta.contentType), clip.body, meta.cameraId, meta.eventId, meta.startedAt);
    const summary = await clip.summary;
    // The event's snapshot and what was seen in it: the pipeline settles this once the event has closed.
    const objects = await meta.settled;
    const record: EventRecord = {
      eventId: meta.eventId,
      cameraPseudonym,
      motionAt: new Date(meta.motionAt).toISOString(),
      startedAt: new Date(meta.startedAt).toISOString(),
      durationMs: summary.durationMs,
      endedBy: summary.endedBy,
      clipObjectId: objectId,
    };
    const snapshotId = this.#snapshots.get(meta.eventId);
    if (snapshotId !== undefined) record.snapshotObjectId = snapshotId;
    if (objects !== undefined) {
      record.labels = objects.labels;
      record.scores = objects.scores;
      if (objects.snapshotObject !== undefined) record.snapshotObject = objects.snapshotObject;
    }
    this.#snapshots.delete(meta.eventId);
    const eventObjectId = newObjectId();
    const manifest = { ...this.#manifest(eventObjectId, 'event', cameraPseudonym, meta.startedAt, 'application/json'), durationMs: summary.durationMs };
    await this.#publish(manifest, Buffer.from(JSON.stringify(record)), meta.cameraId, meta.eventId, meta.startedAt);
    this.#o.events?.recordEvent({ eventId: meta.eventId, cameraId: meta.cameraId, kind: 'motion', startedAt: meta.motionAt, endedAt: meta.startedAt + summary.durationMs });
  }

  async #snapshot(snapshot: Snapshot): Promise<void> {
    const decision = this.#o.mayRecord?.(snapshot.cameraId);
    if (decision !== undefined && !decision.allowed) {
      this.#o.onRefused?.({ cameraId: snapshot.cameraId, eventId: snapshot.eventId, kind: 'snapshot', reason: decision.reason });
      return;
    }
    const objectId = newObjectId();
    const cameraPseudonym = this.#o.cameraPseudonym(snapshot.cameraId);
    this.#snapshots.set(snapshot.eventId, objectId);
    // Bounded: an event whose clip never comes (the stream died before it started) must not leak entries.
    if (this.#snapshots.size > 256) this.#snapshots.delete(this.#snapshots.keys().next().value!);
    await this.#publish(this.#manifest(objectId, 'snapshot', cameraPseudonym, snapshot.at, snapshot.contentType), snapshot.jpeg, snapshot.cameraId, snapshot.eventId, snapshot.at);
  }

  #manifest(objectId: string, kind: ObjectKind, cameraPseudonym: string, at: number, contentType: string): Manifest {
    return {
      version: 1,
      objectId,
      kind,
      cameraPseudonym,
      startedAt: new Date(at).toISOString(),
      contentType,
      policyVersion: this.#o.policyVersion(),
    };
  }

  async #publish(manifest: Manifest, body: ByteSource, cameraId: string, eventId: string, capturedAt: number): Promise<void> {
    const { objectId, kind } = manifest;
    const stored = await this.#o.publisher.publish({ manifest, body, cameraId, eventId, capturedAt });
    this.#o.logger.debug({ camera: cameraId, event: eventId, object: objectId, kind, bytes: stored.bytes }, 'object sealed and stored');
    this.#o.onStored?.({ objectId, kind, cameraId, eventId, bytes: stored.bytes });
  }
}
