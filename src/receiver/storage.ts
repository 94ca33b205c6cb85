import type { Readable } from 'node:stream';

/** One stored object as a listing shows it. */
export interface StoredObject {
  objectId: string;
  bytes: number;
  /** ISO 8601: when it was stored (the file's mtime, the bucket's LastModified). */
  receivedAt: string;
}

/** A presigned request a hub sends its body with, straight to the object store (see docs/receiver.md). */
export interface PresignedUpload {
  url: string;
  method: 'PUT';
  /** Headers the request must carry exactly (they are signed). */
  headers: Record<string, string>;
  /** ISO 8601: the URL is refused by the store after this. */
  expiresAt: string;
}

/**
 * Where the receiver keeps objects: the seam between its HTTP API (tokens, age-header check, size limits,
 * in server.ts) and the bytes. A backend holds nothing between requests that another receiver on the same
 * storage would not see, so several receivers on one store behave as one.
 */
export interface ReceiverStorage {
  /** What the start-up log may say about it (never a credential). */
  readonly description: string;
  /**
   * Stores `body` (already checked: it yields only after a valid age header) as `<hub>/<objectId>`,
   * replacing an earlier one whole or not at all. Throws when the body fails; nothing is then stored.
   */
  put(hub: string, objectId: string, body: Readable): Promise<void>;
  list(hub: string): Promise<StoredObject[]>;
  /** The stored ciphertext and its size, or undefined when not held. */
  get(hub: string, objectId: string): Promise<{ bytes: number; body: Readable } | undefined>;
  /** False when the object was not held. */
  delete(hub: string, objectId: string): Promise<boolean>;
  /** A presigned PUT for exactly this object and size; only backends that can presign have it. */
  presignPut?(hub: string, objectId: string, bytes: number, expiresInSeconds: number): Promise<PresignedUpload>;
  close(): Promise<void>;
}
