import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { wallNow } from '../clock.js';
import { CamveilError } from '../errors.js';
import { CuttableAgents } from '../s3/cuttable-agents.js';
import { createS3Client } from '../s3/s3-client.js';
import { readS3Credentials } from '../s3/s3-credentials.js';
import { validateEndpoint } from './endpoint.js';
import type { DeleteResult, PutOutcome, RemoteListing, RemoteObject, RemoteObjectStore, StoreCheck } from './remote-object-store.js';
import { s3Failure } from './s3-errors.js';
import { hubKeyPrefix, objectIdOfKey, objectKey } from './s3-keys.js';
import { Throttle, TokenBucket } from './throttle.js';

export interface S3ObjectStoreOptions {
  /** An S3-compatible endpoint (https, or http to loopback); AWS S3 itself when absent. */
  endpoint?: URL | string;
  region: string;
  bucket: string;
  /** Keys start `<prefix>/` (no leading or trailing slash); none when absent. */
  prefix?: string;
  /** `<endpoint>/<bucket>/<key>` addressing (most self-hosted stores). */
  forcePathStyle?: boolean;
  /** YAML or JSON with accessKeyId and secretAccessKey (src/s3/s3-credentials.ts); read by open(). */
  credentialsFile: string;
  hubPseudonym: string;
  /**
   * Idle limit of one request: it fails when its socket sees no traffic (body taken, answer coming) for
   * this long; one that keeps moving is never cut however long a large clip takes. Default 120 s.
   */
  requestTimeoutMs?: number;
  /** Bytes per second for all of this store's uploads together; undefined = no cap. */
  bandwidthBytesPerSecond?: number;
  /** Time limit of a small request (HEAD, listing, deletion, abort); default 15 s. */
  shortRequestTimeoutMs?: number;
  /** Objects larger than this go as multipart uploads of this part size (default 8 MiB; S3's minimum part is 5 MiB). */
  partSizeBytes?: number;
  /** Parts in flight at once in a multipart upload (default 2: 64 MiB to the local Swift went 54 MiB/s against 43 with 1; up to three parts, 24 MiB, are held in memory). */
  queueSize?: number;
  /** Wall time (src/clock.ts), for Retry-After given as a date. */
  now?: () => number;
}

const MiB = 1024 * 1024;
/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

type Settings = S3ObjectStoreOptions & { requestTimeoutMs: number; shortRequestTimeoutMs: number; partSizeBytes: number; queueSize: number; now: () => number };

/**
 * The `s3` transport: the hub's sealed objects as `<prefix>/<hub>/<id>.age` in an S3-compatible bucket
 * (AWS S3, R2, B2, Wasabi, Ceph RGW, Swift's s3api, MinIO-like stores), with the client that carries
 * their quirks (src/s3/s3-client.ts). Small objects are one PutObject streamed from the file; larger ones
 * a multipart upload (lib-storage) whose parts are read from the same stream. Every upload is confirmed
 * by the answer's ETag and then the stored size (HEAD). An abort ends the request at once and aborts the
 * multipart upload on the server; check() at start removes what a killed run left (see there).
 */
export class S3ObjectStore implements RemoteObjectStore {
  readonly #o: Settings;
  readonly #endpoint: URL | undefined;
  readonly #hubPrefix: string;
  readonly #bandwidth: TokenBucket | undefined;
  #client: S3Client | undefined;
  /** The client's connection pools: an abort resets their connections (cuttable-agents.ts). */
  #agents: CuttableAgents | undefined;
  /** Server-side aborts of cut multipart uploads still under way. */
  readonly #cleanups = new Set<Promise<void>>();

  constructor(options: S3ObjectStoreOptions) {
    this.#o = { requestTimeoutMs: 120_000, shortRequestTimeoutMs: 15_000, partSizeBytes: 8 * MiB, queueSize: 2, now: wallNow, ...options };
    if (this.#o.partSizeBytes < 5 * MiB) throw new RangeError('S3 multipart parts must be at least 5 MiB');
    this.#endpoint = options.endpoint === undefined ? undefined : validateEndpoint(String(options.endpoint), 'S3 endpoint');
    this.#hubPrefix = hubKeyPrefix(options.prefix, options.hubPseudonym);
    this.#bandwidth = options.bandwidthBytesPerSecond === undefined ? undefined : new TokenBucket(options.bandwidthBytesPerSecond);
  }

  get description(): { type: string; origin: string; bucket: string } {
    return { type: 's3', origin: this.#endpoint === undefined ? `s3:${this.#o.region}` : this.#endpoint.origin, bucket: this.#o.bucket };
  }

  /** The key prefix of this hub's objects (`<prefix>/<hub>/`). */
  get hubPrefix(): string {
    return this.#hubPrefix;
  }

  /**
   * Reads the credentials file (again) and builds the client.
   *
   * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` naming the file, never its content.
   */
  open(): void {
    const credentials = readS3Credentials(this.#o.credentialsFile);
    this.#client?.destroy();
    this.#agents?.destroy();
    const agents = new CuttableAgents();
    const client = createS3Client({
      agents,
      ...(this.#endpoint === undefined ? {} : { endpoint: this.#endpoint.href }),
      region: this.#o.region,
      forcePathStyle: this.#o.forcePathStyle ?? false,
      credentials,
    });
    // Idle limits on the socket: no traffic for this long fails the request, however long it has run.
    const handler = client.config.requestHandler as { updateHttpClientConfig?: (key: string, value: unknown) => void };
    handler.updateHttpClientConfig?.('socketTimeout', this.#o.requestTimeoutMs);
    handler.updateHttpClientConfig?.('connectionTimeout', Math.min(this.#o.requestTimeoutMs, 30_000));
    this.#client = client;
    this.#agents = agents;
  }

  /** Closes the client's connections (open() builds a new one). */
  close(): void {
    this.#client?.destroy();
    this.#client = undefined;
    this.#agents?.destroy();
    this.#agents = undefined;
  }

  #s3(): S3Client {
    if (this.#client === undefined) this.open();
    return this.#client as S3Client;
  }

  /**
   * The bucket answers with these credentials (HeadBucket), and no multipart upload of this hub's is left
   * open: after a kill, the parts of an upload that was under way stay stored (and billed) until aborted.
   * This hub is the only writer under its prefix and nothing of it is in flight when the uploader starts,
   * so every open upload under the prefix is a leftover. A failure of that tidying (a key without
   * `s3:ListBucketMultipartUploads`) is returned as a warning: the bucket is usable.
   *
   * @throws CamveilError `CAMVEIL_E_UPLOAD_REJECTED` naming the bucket and the S3 code (no such bucket,
   * wrong credentials, access denied), `CAMVEIL_E_UPLOAD_FAILED` (network, 5xx), `CAMVEIL_E_SECRET_UNREADABLE`.
   */
  async check(signal: AbortSignal): Promise<StoreCheck> {
    const client = this.#s3();
    const bucket = this.#o.bucket;
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: this.#short(signal) });
    } catch (error) {
      throw s3Failure(error, bucket, 'check', this.#o.now()).error;
    }
    let cleaned = 0;
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (let page = 0; page < 1000; page++) {
        const listed = await client.send(
          new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: this.#hubPrefix, ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }), ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }) }),
          { abortSignal: this.#short(signal) },
        );
        for (const upload of listed.Uploads ?? []) {
          if (upload.Key === undefined || upload.UploadId === undefined || !upload.Key.startsWith(this.#hubPrefix)) continue;
          await this.#abortMultipart(upload.Key, upload.UploadId, signal);
          cleaned++;
        }
        if (listed.IsTruncated !== true || (listed.NextKeyMarker === undefined && listed.NextUploadIdMarker === undefined)) break;
        keyMarker = listed.NextKeyMarker;
        uploadIdMarker = listed.NextUploadIdMarker;
      }
    } catch (error) {
      if (signal.aborted) throw error;
      // The bucket takes uploads: a key without the right to list or abort multipart uploads must not stop them.
      return { cleaned, warning: s3Failure(error, bucket, 'cleanup of unfinished uploads', this.#o.now()).error.message };
    }
    return { cleaned };
  }

  async put(object: RemoteObject, source: Readable | Uint8Array, signal: AbortSignal): Promise<PutOutcome> {
    // First of the abort's listeners (the SDK's come later): the connections are reset before anything
    // closes them gracefully, so what the kernel still holds of a part is dropped, not sent.
    const cut = (): void => this.#agents?.cutAll();
    signal.addEventListener('abort', cut, { once: true });
    try {
      return await this.#put(object, source, signal);
    } finally {
      signal.removeEventListener('abort', cut);
    }
  }

  async #put(object: RemoteObject, source: Readable | Uint8Array, signal: AbortSignal): Promise<PutOutcome> {
    const file = source instanceof Uint8Array ? Readable.from([source]) : source;
    const stages: Readable[] = [file];
    if (this.#bandwidth !== undefined) stages.push(new Throttle(this.#bandwidth));
    // The SDK reads the body from this end; a read error reaches it through the pipeline.
    const body = new Transform({ transform: (chunk: Buffer, _encoding, callback) => callback(null, chunk) });
    stages.push(body);
    pipeline(stages).catch(() => undefined);
    const key = objectKey(this.#hubPrefix, object.objectId);
    try {
      if (signal.aborted) throw signal.reason;
      const client = this.#s3();
      const etag = object.bytes > this.#o.partSizeBytes ? await this.#multipart(client, key, object, body, signal) : await this.#single(client, key, object, body, signal);
      if (etag === undefined || etag === '') {
        return { kind: 'retry', error: new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `S3 upload to bucket "${this.#o.bucket}": the answer carries no ETag`, { where: 'uplink' }) };
      }
      let head;
      try {
        head = await client.send(new HeadObjectCommand({ Bucket: this.#o.bucket, Key: key }), { abortSignal: this.#short(signal) });
      } catch (error) {
        // Cut after the store took the whole body (a length-checked PUT, or a completed multipart upload) and
        // answered with an ETag: it is stored, and the uploader must not think otherwise (nor re-send it).
        if (signal.aborted) return { kind: 'uploaded' };
        throw error;
      }
      if (head.ContentLength !== object.bytes) {
        const stored = head.ContentLength === undefined ? 'no size' : `${head.ContentLength} bytes`;
        return { kind: 'retry', error: new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `S3 upload to bucket "${this.#o.bucket}": ${stored} stored, ${object.bytes} sent`, { where: 'uplink' }) };
      }
      return { kind: 'uploaded' };
    } catch (error) {
      if (signal.aborted) return aborted(signal);
      const failure = s3Failure(error, this.#o.bucket, 'upload', this.#o.now());
      if (!failure.retry) return { kind: 'reject', error: failure.error };
      return failure.retryAfterMs === undefined ? { kind: 'retry', error: failure.error } : { kind: 'retry', error: failure.error, retryAfterMs: failure.retryAfterMs };
    } finally {
      body.destroy();
      file.destroy();
    }
  }

  /** One PutObject streaming the body; resolves to the answer's ETag. */
  async #single(client: S3Client, key: string, object: RemoteObject, body: Readable, signal: AbortSignal): Promise<string | undefined> {
    const answer = await client.send(
      new PutObjectCommand({ Bucket: this.#o.bucket, Key: key, Body: body, ContentLength: object.bytes, ContentType: 'application/octet-stream' }),
      { abortSignal: signal },
    );
    return answer.ETag;
  }

  /**
   * A multipart upload (lib-storage) of parts read in turn from the body. Upload does not hand its own
   * abort signal to the part requests, so an abort would let a part of up to 8 MiB finish: its client
   * here gives every request the caller's signal instead (but the AbortMultipartUpload it sends when it
   * fails). After an abort the multipart upload is aborted on the server in the background: the caller
   * (a withdrawal) does not wait for a round trip that carries no data, nor for a dead network's timeout.
   */
  async #multipart(client: S3Client, key: string, object: RemoteObject, body: Readable, signal: AbortSignal): Promise<string | undefined> {
    const upload = new Upload({
      client: clientWithSignal(client, signal),
      params: { Bucket: this.#o.bucket, Key: key, Body: body, ContentLength: object.bytes, ContentType: 'application/octet-stream' },
      partSize: this.#o.partSizeBytes,
      queueSize: this.#o.queueSize,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const done = await upload.done();
      return done.ETag;
    } catch (error) {
      if (signal.aborted) this.#track(this.#abortOpenUploads(key, upload.uploadId));
      throw error;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  #track(cleanup: Promise<void>): void {
    this.#cleanups.add(cleanup);
    void cleanup.finally(() => this.#cleanups.delete(cleanup));
  }

  /** Resolves once the server-side aborts of cut uploads have ended (each within the short request limit). */
  async cleanupsSettled(): Promise<void> {
    await Promise.allSettled([...this.#cleanups]);
  }

  /**
   * After an abort: the upload of `key` is aborted on the server (the one Upload created, and any other
   * open on the key: a create the abort cut may have reached the server). Failures are left to the next
   * start's check().
   */
  async #abortOpenUploads(key: string, uploadId: string | undefined): Promise<void> {
    const client = this.#s3();
    const never = new AbortController().signal;
    try {
      if (uploadId !== undefined) await this.#abortMultipart(key, uploadId, never);
      const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: this.#o.bucket, Prefix: key }), { abortSignal: this.#short(never) });
      for (const open of listed.Uploads ?? []) {
        if (open.Key === key && open.UploadId !== undefined && open.UploadId !== uploadId) await this.#abortMultipart(key, open.UploadId, never);
      }
    } catch {
      // the next check() at start removes it
    }
  }

  /** Aborts one multipart upload; one already gone counts as aborted. */
  async #abortMultipart(key: string, uploadId: string, signal: AbortSignal): Promise<void> {
    try {
      await this.#s3().send(new AbortMultipartUploadCommand({ Bucket: this.#o.bucket, Key: key, UploadId: uploadId }), { abortSignal: this.#short(signal) });
    } catch (error) {
      if ((error as { name?: string }).name !== 'NoSuchUpload') throw error;
    }
  }

  async delete(objectIds: readonly string[], signal?: AbortSignal): Promise<DeleteResult> {
    const result: DeleteResult = { deleted: [], failed: [] };
    let client: S3Client;
    try {
      client = this.#s3();
    } catch (error) {
      const e = error instanceof CamveilError ? error : new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', 'S3 credentials unreadable', { where: 'uplink', cause: error });
      result.failed = objectIds.map((objectId) => ({ objectId, error: e }));
      return result;
    }
    for (let i = 0; i < objectIds.length; i += DELETE_BATCH) {
      const batch = objectIds.slice(i, i + DELETE_BATCH);
      const byKey = new Map(batch.map((id) => [objectKey(this.#hubPrefix, id), id]));
      try {
        const answer = await client.send(
          new DeleteObjectsCommand({ Bucket: this.#o.bucket, Delete: { Objects: [...byKey.keys()].map((Key) => ({ Key })), Quiet: true } }),
          { abortSignal: this.#short(signal) },
        );
        const failed = new Map<string, string>();
        for (const e of answer.Errors ?? []) {
          // A key the bucket does not hold is deleted as far as the household is concerned.
          if (e.Key !== undefined && e.Code !== 'NoSuchKey') failed.set(e.Key, e.Code ?? 'error');
        }
        for (const [key, objectId] of byKey) {
          const code = failed.get(key);
          if (code === undefined) result.deleted.push(objectId);
          else result.failed.push({ objectId, error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `S3 deletion in bucket "${this.#o.bucket}": ${code}`, { where: 'uplink' }) });
        }
      } catch (error) {
        const failure = s3Failure(error, this.#o.bucket, 'deletion', this.#o.now());
        const e = failure.error.code === 'CAMVEIL_E_UPLOAD_REJECTED' ? new CamveilError('CAMVEIL_E_UPLOAD_FAILED', failure.error.message, { where: 'uplink' }) : failure.error;
        for (const objectId of batch) result.failed.push({ objectId, error: e });
      }
    }
    return result;
  }

  async list(signal?: AbortSignal): Promise<RemoteListing[]> {
    const client = this.#s3();
    const listing: RemoteListing[] = [];
    let token: string | undefined;
    try {
      for (;;) {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: this.#o.bucket, Prefix: this.#hubPrefix, ...(token === undefined ? {} : { ContinuationToken: token }) }),
          { abortSignal: this.#short(signal) },
        );
        for (const o of page.Contents ?? []) {
          const objectId = o.Key === undefined ? undefined : objectIdOfKey(this.#hubPrefix, o.Key);
          if (objectId === undefined || o.Size === undefined) continue;
          listing.push({ objectId, bytes: o.Size, ...(o.LastModified === undefined ? {} : { storedAt: o.LastModified.toISOString() }) });
        }
        if (page.IsTruncated !== true) break;
        if (page.NextContinuationToken === undefined || page.NextContinuationToken === token) {
          throw new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `S3 listing of bucket "${this.#o.bucket}": truncated without a continuation token`, { where: 'uplink' });
        }
        token = page.NextContinuationToken;
      }
    } catch (error) {
      if (error instanceof CamveilError) throw error;
      const failure = s3Failure(error, this.#o.bucket, 'listing', this.#o.now());
      throw new CamveilError('CAMVEIL_E_UPLOAD_FAILED', failure.error.message, { where: 'uplink' });
    }
    return listing;
  }

  #short(signal: AbortSignal | undefined): AbortSignal {
    const timeout = AbortSignal.timeout(this.#o.shortRequestTimeoutMs);
    return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  }
}

/** An abort is `retry` with the abort's reason (`CAMVEIL_E_UPLOAD_ABORTED`), as the http store reports it. */
function aborted(signal: AbortSignal): PutOutcome {
  const reason: unknown = signal.reason;
  return { kind: 'retry', error: reason instanceof CamveilError ? reason : new CamveilError('CAMVEIL_E_UPLOAD_ABORTED', 'upload aborted', { where: 'uplink' }) };
}

/** The client as lib-storage's Upload sees it: every request it sends carries `signal`, but the abort of the upload itself. */
function clientWithSignal(client: S3Client, signal: AbortSignal): S3Client {
  // Forwards whatever Upload sends, unchanged but for the signal (send is overloaded per command type).
  const forward = client.send.bind(client) as (command: unknown, options?: Record<string, unknown>) => Promise<unknown>;
  const send = (command: unknown, options?: Record<string, unknown>): Promise<unknown> =>
    forward(command, command instanceof AbortMultipartUploadCommand ? options : { ...options, abortSignal: signal });
  return new Proxy(client, { get: (target, property, receiver): unknown => (property === 'send' ? send : Reflect.get(target, property, receiver)) });
}
