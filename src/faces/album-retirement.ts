import type { ObjectStore } from '../store/object-store.js';
import type { DeletionRequests } from '../uplink/deletion-requests.js';
import type { Outbox } from '../uplink/outbox.js';
import type { FaceAlbumRows } from './face-album-rows.js';

export interface AlbumRetirementOptions {
  rows: Pick<FaceAlbumRows, 'retire' | 'retired' | 'forgetRetired'>;
  store: Pick<ObjectStore, 'delete'>;
  /** The outbox, to tell whether a retired album reached the cloud, and to withdraw one still queued. */
  outbox?: Pick<Outbox, 'get' | 'destroyIfQueued'>;
  deletions: Pick<DeletionRequests, 'add'>;
  /** Sends pending deletion requests soon (they are recorded in the database first). */
  flushDeletions?: () => void;
  /** Wall time (epoch ms) of retired and deletion records. */
  now: () => number;
}

/**
 * Album objects that were replaced or deleted, followed until nothing of them is left anywhere: deleted on
 * the hub at once and recorded as retired (a crash then repeats, never loses, what follows); then each is
 * settled by where its upload stands. Uploaded → a deletion request to the cloud (sent even in local-only
 * mode: it carries only the object id); still queued → withdrawn from the outbox with its staged file, so a
 * superseded album never goes out; being uploaded → settled when the outcome is known (call `settle`
 * again); failed or never queued → nothing left to do.
 */
export class AlbumRetirement {
  readonly #o: AlbumRetirementOptions;

  constructor(options: AlbumRetirementOptions) {
    this.#o = options;
  }

  /** Deletes album objects on the hub and records them as retired; then settles them. */
  retire(objectIds: readonly string[]): void {
    if (objectIds.length === 0) return;
    this.#o.rows.retire(objectIds, this.#o.now());
    for (const id of objectIds) this.#o.store.delete(id);
    this.settle();
  }

  /** Settles every retired album object whose upload is no longer in flight. */
  settle(): void {
    const { outbox, rows } = this.#o;
    const toDelete: string[] = [];
    const settled: string[] = [];
    for (const { objectId } of rows.retired()) {
      const item = outbox?.get(objectId);
      if (item?.state === 'uploading') continue;
      if (item?.state === 'queued' && outbox?.destroyIfQueued(objectId) !== true) continue;
      if (item?.state === 'uploaded') toDelete.push(objectId);
      settled.push(objectId);
    }
    // The request is recorded before the retired id is forgotten: a crash in between repeats, never loses, it.
    if (toDelete.length > 0) this.#o.deletions.add(toDelete, this.#o.now());
    settled.forEach((id) => rows.forgetRetired(id));
    if (toDelete.length > 0) this.#o.flushDeletions?.();
  }
}
