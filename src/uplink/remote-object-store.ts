import type { Readable } from 'node:stream';
import type { CamveilError } from '../errors.js';

/**
 * Where the hub's sealed objects go off the hub: the seam between the uploader (which decides what goes,
 * when, and how often it is tried) and a transport (which only moves bytes). A store is given nothing but
 * age ciphertext and object ids; it never learns a camera, a person or an object's kind. Its
 * implementations are the HTTP receiver protocol (http-receiver-store.ts) and S3-compatible buckets
 * (s3-object-store.ts).
 */
export interface RemoteObjectStore {
  /** What the logs may say about where objects go: the type and the origin, never a credential. */
  readonly description: { type: string; origin: string };
  /**
   * Reads what the store needs before it can be used (credentials) and checks it; called by the uploader's
   * start(), so a fresh start reads them again.
   *
   * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` naming the file (never its content).
   */
  open(): void;
  /**
   * Optional: checks, once the store is open and before any upload, that it can be used (the bucket exists
   * and the credentials are accepted), and tidies what an earlier run killed mid-upload left on the server.
   * The uploader calls it at each start and uploads nothing until it resolves; a rejection is logged,
   * told (`uplink.store` event) and tried again later, the queue waiting meanwhile.
   *
   * @throws CamveilError `CAMVEIL_E_UPLOAD_REJECTED` (refused: no such bucket, wrong credentials),
   * `CAMVEIL_E_UPLOAD_FAILED` (may pass), `CAMVEIL_E_SECRET_UNREADABLE`.
   */
  check?(signal: AbortSignal): Promise<StoreCheck>;
  /**
   * Stores one object under its id, replacing one stored before under the same id (so a retry is
   * idempotent). Never throws: every way it can end is an outcome. An abort of `signal` ends the request at
   * once and is reported as `retry` with `CAMVEIL_E_UPLOAD_ABORTED`.
   */
  put(object: RemoteObject, body: Readable | Uint8Array, signal: AbortSignal): Promise<PutOutcome>;
  /**
   * Asks the store to delete objects; an object it does not hold counts as deleted. Never throws: each id
   * ends deleted or failed (with `CAMVEIL_E_UPLOAD_FAILED`, or `CAMVEIL_E_SECRET_UNREADABLE` when the
   * credentials cannot be read).
   */
  delete(objectIds: readonly string[], signal?: AbortSignal): Promise<DeleteResult>;
  /**
   * What the store holds for this hub.
   *
   * @throws CamveilError `CAMVEIL_E_UPLOAD_FAILED` (network, timeout, refusal),
   * `CAMVEIL_E_CLOUD_PROTOCOL` (an answer that is not a listing), `CAMVEIL_E_SECRET_UNREADABLE`.
   */
  list(signal?: AbortSignal): Promise<RemoteListing[]>;
  /** Optional: lets go of the store's connections (a one-off use by the console); open() may be called again. */
  close?(): void;
}

/** What a store's check() found. */
export interface StoreCheck {
  /** Unfinished uploads of an earlier run it removed from the server. */
  cleaned: number;
  /** Why tidying could not be done (the store is usable all the same; the next start tries again). */
  warning?: string;
}

/** An object to store: its id and its exact size in bytes (the body must be that long). */
export interface RemoteObject {
  objectId: string;
  bytes: number;
}

export type PutOutcome =
  /** Stored, and the store confirmed this id and this size. */
  | { kind: 'uploaded' }
  /** Worth trying again later; `retryAfterMs` is the store's own request for a pause, when it made one. */
  | { kind: 'retry'; error: CamveilError; retryAfterMs?: number }
  /** The store refused for good (`CAMVEIL_E_UPLOAD_REJECTED`, or `CAMVEIL_E_UPLOAD_FAILED` for a body that cannot be read). */
  | { kind: 'reject'; error: CamveilError };

export interface DeleteResult {
  /** Deleted now, or not held (already gone). */
  deleted: string[];
  failed: Array<{ objectId: string; error: CamveilError }>;
}

export interface RemoteListing {
  objectId: string;
  bytes: number;
  /** ISO 8601, when the store says. */
  storedAt?: string;
}
