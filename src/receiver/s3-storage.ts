import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable } from 'node:stream';
import { CamveilError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { createS3Client } from '../s3/s3-client.js';
import type { S3Credentials } from '../s3/s3-credentials.js';
import { s3Status } from '../uplink/s3-errors.js';
import { hubKeyPrefix, objectIdOfKey, objectKey } from '../uplink/s3-keys.js';
import type { PresignedUpload, ReceiverStorage, StoredObject } from './storage.js';

export interface S3StorageOptions {
  /** An S3-compatible endpoint (checked by the caller: https, or http to loopback); AWS S3 when absent. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Keys are `<prefix>/<hub>/<objectId>.age` (`<hub>/<objectId>.age` without one). */
  prefix?: string;
  forcePathStyle?: boolean;
  credentials: S3Credentials;
  /** Part size of multipart uploads (and the most one upload buffers): default 8 MiB, at least 5 MiB. */
  partSizeBytes?: number;
}

const DEFAULT_PART_BYTES = 8 * 1024 * 1024;

/** The content type every object is stored (and presigned) with: nothing about it is told in clear. */
export const OBJECT_CONTENT_TYPE = 'application/octet-stream';

/**
 * Objects in an S3-compatible bucket under `<prefix>/<hub>/<objectId>.age`, with no metadata beyond size.
 * Stateless: every answer comes from the bucket, so several receivers on one bucket behave as one. A body
 * goes through lib-storage's Upload (one PutObject up to the part size, else a multipart upload of parts
 * read in turn, aborted on the server when the body fails), so at most one part is held in memory.
 */
export class S3Storage implements ReceiverStorage {
  readonly #o: S3StorageOptions;
  readonly #client: S3Client;

  constructor(options: S3StorageOptions) {
    this.#o = options;
    this.#client = createS3Client({
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      region: options.region,
      forcePathStyle: options.forcePathStyle ?? false,
      credentials: options.credentials,
    });
  }

  get description(): string {
    const where = this.#o.endpoint === undefined ? `AWS S3 ${this.#o.region}` : redactUrl(this.#o.endpoint);
    return `S3 bucket ${this.#o.bucket} at ${where}${this.#o.prefix === undefined ? '' : ` under ${this.#o.prefix}/`}`;
  }

  /**
   * Checks the bucket answers to these credentials (HeadBucket).
   *
   * @throws CamveilError `CAMVEIL_E_USAGE` naming the bucket when it does not exist;
   * `CAMVEIL_E_UPLOAD_REJECTED` when the store refuses the credentials; `CAMVEIL_E_UPLOAD_FAILED` otherwise.
   * Messages carry the status and S3 code only, never the store's text.
   */
  async check(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#o.bucket }), { abortSignal: AbortSignal.timeout(30_000) });
    } catch (error) {
      const status = s3Status(error);
      const name = (error as { name?: unknown }).name;
      const code = typeof name === 'string' && /^[A-Za-z]{1,64}$/.test(name) ? name : 'error';
      const where = 'receiver --s3-bucket';
      if (status === 404) throw new CamveilError('CAMVEIL_E_USAGE', `S3 bucket ${this.#o.bucket} does not exist at ${this.description}`, { where });
      if (status === 403 || status === 401) {
        throw new CamveilError('CAMVEIL_E_UPLOAD_REJECTED', `S3 bucket ${this.#o.bucket}: the store refuses these credentials (HTTP ${status})`, { where });
      }
      const why = status === undefined ? code : `HTTP ${status} ${code}`;
      throw new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `S3 bucket ${this.#o.bucket} cannot be reached (${why})`, { where, cause: error });
    }
  }

  #key(hub: string, objectId: string): string {
    return objectKey(hubKeyPrefix(this.#o.prefix, hub), objectId);
  }

  async put(hub: string, objectId: string, body: Readable): Promise<void> {
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#o.bucket, Key: this.#key(hub, objectId), Body: body, ContentType: OBJECT_CONTENT_TYPE },
      partSize: this.#o.partSizeBytes ?? DEFAULT_PART_BYTES,
      queueSize: 1,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      // Upload aborts a multipart upload it began when a part or the body fails; this covers the rest.
      await upload.abort().catch(() => undefined);
      throw error;
    }
  }

  async list(hub: string): Promise<StoredObject[]> {
    const prefix = hubKeyPrefix(this.#o.prefix, hub);
    const list: StoredObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#o.bucket, Prefix: prefix, ...(token === undefined ? {} : { ContinuationToken: token }) }));
      for (const item of page.Contents ?? []) {
        const objectId = item.Key === undefined ? undefined : objectIdOfKey(prefix, item.Key);
        if (objectId === undefined) continue;
        list.push({ objectId, bytes: item.Size ?? 0, receivedAt: (item.LastModified ?? new Date(0)).toISOString() });
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return list.sort((a, b) => (a.objectId < b.objectId ? -1 : a.objectId > b.objectId ? 1 : 0));
  }

  async get(hub: string, objectId: string): Promise<{ bytes: number; body: Readable } | undefined> {
    try {
      const got = await this.#client.send(new GetObjectCommand({ Bucket: this.#o.bucket, Key: this.#key(hub, objectId) }));
      if (!(got.Body instanceof Readable)) throw new Error('S3 GetObject body is not a Node stream');
      return { bytes: got.ContentLength ?? 0, body: got.Body };
    } catch (error) {
      if (s3Status(error) === 404) return undefined;
      throw error;
    }
  }

  async delete(hub: string, objectId: string): Promise<boolean> {
    const key = this.#key(hub, objectId);
    // S3's DeleteObject answers 204 whether or not the key existed: a HEAD keeps the receiver's 404.
    try {
      await this.#client.send(new HeadObjectCommand({ Bucket: this.#o.bucket, Key: key }));
    } catch (error) {
      if (s3Status(error) === 404) return false;
      throw error;
    }
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#o.bucket, Key: key }));
    return true;
  }

  /**
   * A presigned PutObject for this key whose signature covers Content-Length and Content-Type, so the store
   * refuses the URL for another key, another size, another type, or after `expiresInSeconds`.
   */
  async presignPut(hub: string, objectId: string, bytes: number, expiresInSeconds: number): Promise<PresignedUpload> {
    const issuedAt = Date.now();
    const command = new PutObjectCommand({ Bucket: this.#o.bucket, Key: this.#key(hub, objectId), ContentLength: bytes, ContentType: OBJECT_CONTENT_TYPE });
    const url = await getSignedUrl(this.#client, command, { expiresIn: expiresInSeconds, signableHeaders: new Set(['content-length', 'content-type']) });
    return {
      url,
      method: 'PUT',
      headers: { 'content-type': OBJECT_CONTENT_TYPE, 'content-length': String(bytes) },
      expiresAt: new Date(issuedAt + expiresInSeconds * 1000).toISOString(),
    };
  }

  close(): Promise<void> {
    this.#client.destroy();
    return Promise.resolve();
  }
}
