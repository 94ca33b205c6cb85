import { unlinkSync } from 'node:fs';
import { link, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { OutboxEntry } from '../uplink/outbox.js';
import type { AlongsideCommit } from './object-store.js';

export interface StagedUploadsOptions {
  /** The outbox in the same database as the store: its row commits in the object's transaction. */
  outbox: { enqueue(entry: OutboxEntry): boolean };
  /** `<dataDir>/outbox/`: a hard link per queued object, so retention never pulls a file from under an upload. */
  staging: string;
  /** Whether objects are queued now (cloud mode); asked before staging and again inside the transaction. */
  mayQueue: () => boolean;
  /** Told after a commit that queued something (the uploader wakes up). */
  queued: () => void;
  logger: Logger;
}

/**
 * Queues stored objects for upload in the same SQLite transaction that indexes them (ObjectStore.put's
 * `alongside`): a kill at any moment leaves an object either stored and queued or neither, never stored
 * and forgotten by the uplink. The staged link is made before the commit; one left by a crash before it
 * belongs to no queued row and the start-up staging sweep removes it.
 */
export class StagedUploads {
  readonly #o: StagedUploadsOptions;

  constructor(options: StagedUploadsOptions) {
    this.#o = options;
  }

  /** For ObjectStore.put's `alongside`: undefined when nothing is to be queued now. */
  async prepare(item: Omit<OutboxEntry, 'path'> & { path: string }): Promise<(AlongsideCommit & { committed(): void }) | undefined> {
    const o = this.#o;
    if (!o.mayQueue()) return undefined;
    await mkdir(o.staging, { recursive: true, mode: 0o700 });
    const staged = join(o.staging, `${item.objectId}.age`);
    await link(item.path, staged);
    let queued = false;
    const unlinkStaged = () => {
      try {
        unlinkSync(staged);
      } catch {
        // already gone
      }
    };
    return {
      inTransaction: () => {
        // A withdrawal between the link and the commit: the object is stored, not queued.
        if (!o.mayQueue()) return;
        o.outbox.enqueue({ ...item, path: staged });
        queued = true;
      },
      abandon: unlinkStaged,
      committed: () => {
        if (queued) o.queued();
        else unlinkStaged();
      },
    };
  }
}
