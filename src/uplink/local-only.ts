import type { Outbox } from './outbox.js';
import type { Uploader } from './uploader.js';

/**
 * What entering local-only mode does to the uplink: every request in flight is aborted (the abort reaches
 * the socket at once; `abortAll` returns when they have all settled) and every queued or interrupted
 * upload is destroyed, its row and its staged file. The gate must already refuse uploads when this runs,
 * or the scheduler could pick an item up again between the two steps. Returns the destroyed object ids.
 */
export async function cutUploads(uploader: Uploader, outbox: Outbox, reason: string): Promise<string[]> {
  await uploader.abortAll(reason);
  return outbox.destroyQueued();
}

/**
 * Local-only by an unsigned withdrawal (policy/withdrawal.ts): the same stop, nothing destroyed. The uploader
 * is stopped first and then aborts what is in flight, so those items go back to `queued`, due, with their
 * staged files, and nothing picks them up again: the held queue is not sent until a signed grant starts the
 * uploader again (or a signed withdrawal or `data/delete` destroys it).
 */
export async function holdUploads(uploader: Pick<Uploader, 'stop'>): Promise<void> {
  await uploader.stop();
}

/**
 * The held queue's retention (policy/withdrawal.ts `heldUploadCutoff`): deletes every held upload queued
 * before `cutoff`, its row and its staged file, and returns their ids (for the audit record). The local copy
 * in the store follows the store's retention on its own.
 */
export function expireHeldUploads(outbox: Pick<Outbox, 'destroyQueuedBefore'>, cutoff: number): string[] {
  return outbox.destroyQueuedBefore(cutoff);
}
