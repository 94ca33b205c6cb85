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
 * Local-only by an unsigned withdrawal (policy/withdrawal.ts): the same stop, nothing destroyed. Requests in
 * flight are aborted and go back to `queued` with their staged files; the caller then stops the uploader,
 * so the held queue is not sent until a signed grant starts it again (or a signed withdrawal or
 * `data/delete` destroys it).
 */
export async function holdUploads(uploader: Uploader, reason: string): Promise<void> {
  await uploader.abortAll(reason);
}
