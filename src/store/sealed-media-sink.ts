import type { Readable } from 'node:stream';
import { isReportedWriteFailure, type AlongsideCommit, type ObjectStore } from './object-store.js';
import { newObjectId, sealObject } from '../crypto/sealed-object.js';
import type { Manifest } from '../crypto/manifest.js';
import type { ObjectKind } from '../policy/vocabulary.js';
import type { Logger } from '../log.js';
import type { ClipStream, MediaSink, Snapshot } from '../recording/sink.js';

/** Where sealed objects are kept: the local store (only ever given age ciphertext), or a stand-in in tests. */
export type SealedObjectWriter = Pick<ObjectStore, 'put'> & Partial<Pick<ObjectStore, 'recordEvent'>>;

type UploadItem = { objectId: string; path: string; bytes: number; kind: string; cameraId: string };

/**
 * Where objects that may go to the cloud are queued. With `prepare` (StagedUploads), the queue entry commits
 * in the object's own transaction; `enqueue` alone queues after the store has committed (a crash in between
 * loses that upload: only for stand-ins).
 */
export interface UploadQueue {
  enqueue(item: UploadItem): void;
  prepare?(item: UploadItem): Promise<(AlongsideCommit & { committed(): void }) | undefined>;
}

export interface SealedMediaSinkOptions {
  /** The household's recipients now (they may change while the hub runs). */
  recipients: () => readonly string[];
  writer: SealedObjectWriter;
  /** Absent while uploads are off. */
  uploads?: UploadQueue;
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
}

/**
 * The media sink that encrypts: each clip and snapshot is sealed with age to the household's recipients
 * as it streams (the manifest inside, only a random id outside), written to the local store as
 * ciphertext and queued for upload. Plaintext exists only in this process's memory on its way into the
 * cipher. A clip's length is only known at its end, while its manifest leads the ciphertext, so each
 * event also gets a small sealed `event` object: duration, why it ended, and the clip's and snapshot's ids.
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
    const sealed = sealObject(this.#o.recipients(), this.#manifest(objectId, 'clip', cameraPseudonym, meta.startedAt, meta.contentType), clip.body);
    await this.#store(objectId, 'clip', meta.cameraId, meta.eventId, meta.startedAt, sealed);
    const summary = await clip.summary;
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
    this.#snapshots.delete(meta.eventId);
    const eventObjectId = newObjectId();
    const eventSealed = sealObject(
      this.#o.recipients(),
      { ...this.#manifest(eventObjectId, 'event', cameraPseudonym, meta.startedAt, 'application/json'), durationMs: summary.durationMs },
      Buffer.from(JSON.stringify(record)),
    );
    await this.#store(eventObjectId, 'event', meta.cameraId, meta.eventId, meta.startedAt, eventSealed);
    this.#o.writer.recordEvent?.({ eventId: meta.eventId, cameraId: meta.cameraId, kind: 'motion', startedAt: meta.motionAt, endedAt: meta.startedAt + summary.durationMs });
  }

  async #snapshot(snapshot: Snapshot): Promise<void> {
    const decision = this.#o.mayRecord?.(snapshot.cameraId);
    if (decision !== undefined && !decision.allowed) {
      this.#o.onRefused?.({ cameraId: snapshot.cameraId, eventId: snapshot.eventId, kind: 'snapshot', reason: decision.reason });
      return;
    }
    const objectId = newObjectId();
    const cameraPseudonym = this.#o.cameraPseudonym(snapshot.cameraId);
    const sealed = sealObject(this.#o.recipients(), this.#manifest(objectId, 'snapshot', cameraPseudonym, snapshot.at, snapshot.contentType), snapshot.jpeg);
    this.#snapshots.set(snapshot.eventId, objectId);
    // Bounded: an event whose clip never comes (the stream died before it started) must not leak entries.
    if (this.#snapshots.size > 256) this.#snapshots.delete(this.#snapshots.keys().next().value!);
    await this.#store(objectId, 'snapshot', snapshot.cameraId, snapshot.eventId, snapshot.at, sealed);
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

  async #store(objectId: string, kind: ObjectKind, cameraId: string, eventId: string, capturedAt: number, body: Readable): Promise<void> {
    const uploads = this.#o.uploads;
    let prepared: { committed(): void } | undefined;
    let asked = false;
    const stored = await this.#o.writer.put({
      objectId,
      kind,
      cameraId,
      eventId,
      capturedAt,
      body,
      ...(uploads?.prepare === undefined
        ? {}
        : {
            alongside: async (file: { path: string; bytes: number }) => {
              asked = true;
              const commit = await uploads.prepare!({ objectId, path: file.path, bytes: file.bytes, kind, cameraId });
              prepared = commit;
              return commit;
            },
          }),
    });
    // A writer that does not take `alongside` (a stand-in) gets the upload queued after its commit.
    if (asked) prepared?.committed();
    else uploads?.enqueue({ objectId, path: stored.path, bytes: stored.bytes, kind, cameraId });
    this.#o.logger.debug({ camera: cameraId, event: eventId, object: objectId, kind, bytes: stored.bytes }, 'object sealed and stored');
    this.#o.onStored?.({ objectId, kind, cameraId, eventId, bytes: stored.bytes });
  }
}
