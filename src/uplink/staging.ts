import { readdirSync, unlinkSync } from 'node:fs';
import { link, mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import type { Outbox, OutboxEntry } from './outbox.js';

/** `<dataDir>/outbox/`: one hard link per queued object, so retention never pulls a file from under an upload. */
export function stagingDir(dataDir: string): string {
  return path.join(dataDir, 'outbox');
}

/** The staged link of one object. */
export function stagedPath(staging: string, objectId: string): string {
  return path.join(staging, `${objectId}.age`);
}

/** Removes staged upload links whose upload is over (uploaded, failed, destroyed): left by a crash or an older run. */
export function sweepStaging(staging: string, outbox: Pick<Outbox, 'get'>, logger: Logger): void {
  let names: string[];
  try {
    names = readdirSync(staging);
  } catch {
    return;
  }
  let removed = 0;
  for (const name of names) {
    const state = outbox.get(name.replace(/\.age$/, ''))?.state;
    if (state === 'queued' || state === 'uploading') continue;
    try {
      unlinkSync(path.join(staging, name));
      removed += 1;
    } catch {
      // already gone
    }
  }
  if (removed > 0) logger.info({ removed }, 'removed staged upload links whose upload is over');
}

/**
 * Stages one already stored object for upload after the store committed it (face albums; clips and
 * snapshots are staged inside the store's transaction by StagedUploads): a hard link into the staging
 * directory, then the outbox row. `mayQueue` is asked before the link and again before the row, so a
 * withdrawal in between leaves the object stored and unqueued. Never throws: a failure is logged.
 */
export async function stageStored(
  item: OutboxEntry,
  o: { staging: string; outbox: Pick<Outbox, 'enqueue'>; mayQueue: () => boolean; queued: () => void; logger: Logger },
): Promise<void> {
  if (!o.mayQueue()) return;
  const staged = stagedPath(o.staging, item.objectId);
  await mkdir(o.staging, { recursive: true, mode: 0o700 })
    .then(() => link(item.path, staged))
    .then(() => {
      if (!o.mayQueue()) return unlink(staged);
      o.outbox.enqueue({ ...item, path: staged });
      o.queued();
    })
    .catch((error: unknown) => o.logger.error({ err: error, object: item.objectId }, 'could not queue an object for upload'));
}
