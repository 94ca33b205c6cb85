import type { ByteSource } from '../crypto/age-stream.js';
import type { Manifest } from '../crypto/manifest.js';
import { sealObject } from '../crypto/sealed-object.js';
import type { AlongsideCommit, ObjectStore } from '../store/object-store.js';

/** Where sealed objects are kept: the local store (only ever given age ciphertext), or a stand-in in tests. */
export type SealedObjectWriter = Pick<ObjectStore, 'put'>;

/** An object stored on the hub that may go to the cloud: its age file and what the gate asks about it. */
export interface UploadItem {
  objectId: string;
  path: string;
  bytes: number;
  kind: string;
  cameraId?: string;
}

/**
 * Where objects that may go to the cloud are queued. With `prepare` (StagedUploads), the queue entry commits
 * in the object's own transaction; `enqueue` alone queues after the store has committed (a crash in between
 * loses that upload: only for stand-ins).
 */
export interface UploadQueue {
  enqueue(item: UploadItem): void;
  prepare?(item: UploadItem): Promise<(AlongsideCommit & { committed(): void }) | undefined>;
}

export interface SealedPublisherOptions {
  /** The household's recipients now (they may change while the hub runs). */
  recipients: () => readonly string[];
  writer: SealedObjectWriter;
  /** Absent while uploads are off. */
  uploads?: UploadQueue;
}

/** One object to publish: its manifest (which names its id and kind), its plaintext, and what the store indexes. */
export interface Publication {
  manifest: Manifest;
  body: ByteSource;
  cameraId?: string;
  eventId?: string;
  /** Epoch milliseconds. */
  capturedAt: number;
}

/** What was stored: the object's age file on the hub. */
export interface Published {
  objectId: string;
  path: string;
  bytes: number;
}

/**
 * The one way an object the household will read leaves its producer: sealed with age to the household's
 * recipients as it streams (the manifest inside, only a random id outside), written to the local store as
 * ciphertext, and staged for upload, in the store's own transaction when the queue can (StagedUploads), so
 * a kill leaves the object stored and queued or neither. Whether it may be queued at all is the queue's
 * question (it asks the mode); whether it may then leave is the gate's, asked by the uploader.
 */
export class SealedPublisher {
  readonly #o: SealedPublisherOptions;

  constructor(options: SealedPublisherOptions) {
    this.#o = options;
  }

  /** Whether published objects are staged for upload (false while uploads are off). */
  get stagesUploads(): boolean {
    return this.#o.uploads !== undefined;
  }

  /**
   * Seals, stores and stages one object; resolves once it is stored (and queued, if it is).
   *
   * @throws CamveilError `CAMVEIL_E_MANIFEST_INVALID` or `CAMVEIL_E_KEY_INVALID` before anything is
   * written; the store's errors (`CAMVEIL_E_STORE_…`) after.
   */
  async publish(p: Publication): Promise<Published> {
    const { objectId, kind } = p.manifest;
    const { uploads } = this.#o;
    const body = sealObject(this.#o.recipients(), p.manifest, p.body);
    const where = { ...(p.cameraId === undefined ? {} : { cameraId: p.cameraId }), ...(p.eventId === undefined ? {} : { eventId: p.eventId }) };
    const item = (file: { path: string; bytes: number }): UploadItem => ({
      objectId,
      path: file.path,
      bytes: file.bytes,
      kind,
      ...(p.cameraId === undefined ? {} : { cameraId: p.cameraId }),
    });
    let prepared: { committed(): void } | undefined;
    let asked = false;
    const stored = await this.#o.writer.put({
      objectId,
      kind,
      ...where,
      capturedAt: p.capturedAt,
      body,
      ...(uploads?.prepare === undefined
        ? {}
        : {
            alongside: async (file: { path: string; bytes: number }) => {
              asked = true;
              const commit = await uploads.prepare!(item(file));
              prepared = commit;
              return commit;
            },
          }),
    });
    // A writer that does not take `alongside` (a stand-in) gets the upload queued after its commit.
    if (asked) prepared?.committed();
    else uploads?.enqueue(item(stored));
    return { objectId, path: stored.path, bytes: stored.bytes };
  }
}
