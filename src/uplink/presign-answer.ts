import { z } from 'zod';
import { CamveilError } from '../errors.js';
import { isLoopbackHost } from './endpoint.js';
import { parseRetryAfter } from './response.js';
import type { PutOutcome } from './remote-object-store.js';

/** The response header by which a receiver says it presigns uploads (`camveil-uploads: presign`). */
export const UPLOADS_HEADER = 'camveil-uploads';

/**
 * The receiver's answer to `POST /v1/uploads/<hub>/<id>` (docs/receiver.md, "Presigned uploads"): where
 * and how to PUT the body. Unknown keys are refused.
 */
const presignAnswerSchema = z.strictObject({
  url: z.string().max(8192),
  method: z.literal('PUT'),
  headers: z.record(z.string(), z.string().max(1024)),
  expiresAt: z.string().max(64),
});

/** A presigned PUT the hub may follow: checked, with the headers it will send. */
export interface PresignedPut {
  url: URL;
  headers: Record<string, string>;
}

/**
 * Header names a presign answer may ask for: what a presigned PutObject signs. Anything else (above all
 * `authorization`, `cookie`, `host`) is refused: the hub sends the store nothing but the body and these.
 */
const ALLOWED_HEADER = /^(content-type|content-length|content-md5|x-amz-[a-z0-9-]{1,64})$/;

const where = 'uplink';
const protocol = (message: string) => new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `presign answer: ${message}`, { where });

/**
 * Checks a presign answer for `bytes`: the URL is `https:` (plain `http:` only to loopback) with no
 * `user:password@`; headers are from the allowed set, and a Content-Length among them is exactly `bytes`.
 * Messages never show the URL (its query holds the signature).
 *
 * @throws CamveilError `CAMVEIL_E_CLOUD_PROTOCOL`.
 */
export function parsePresignAnswer(text: string, bytes: number): PresignedPut {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw protocol('not JSON');
  }
  const parsed = presignAnswerSchema.safeParse(json);
  if (!parsed.success) throw protocol(`not {url, method: "PUT", headers, expiresAt} (${parsed.error.issues.map((i) => i.path.join('.') || '(body)').join(', ')})`);
  let url: URL;
  try {
    url = new URL(parsed.data.url);
  } catch {
    throw protocol('url is not a URL');
  }
  if (url.username !== '' || url.password !== '') throw protocol('url carries credentials');
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname)))) {
    throw protocol(`url must be https (plain http only to loopback), not ${url.protocol}//${url.host}`);
  }
  const headers: Record<string, string> = {};
  for (const [rawName, value] of Object.entries(parsed.data.headers)) {
    const name = rawName.toLowerCase();
    if (!ALLOWED_HEADER.test(name)) throw protocol(`header "${name.slice(0, 64)}" is not one a presigned PUT may ask for`);
    if (/[\r\n]/.test(value)) throw protocol(`header "${name}" holds a line break`);
    headers[name] = value;
  }
  if (headers['content-length'] !== undefined && headers['content-length'] !== String(bytes)) {
    throw protocol(`content-length ${headers['content-length'].slice(0, 20)} is not the object's ${bytes} bytes`);
  }
  headers['content-length'] = String(bytes);
  return { url, headers };
}

/** The S3 error code of an XML error body (`<Code>AccessDenied</Code>`): the only part of it shown. */
function s3Code(body: string): string | undefined {
  return /<Code>([A-Za-z]{1,64})<\/Code>/.exec(body)?.[1];
}

/**
 * Classifies the object store's answer to a presigned PUT. 2xx with an ETag is stored: the store checked
 * the signature, which covers the key, the Content-Length (exactly the object's size) and the Content-Type,
 * and the body framing ends the request at that length, so nothing more is asked (no HEAD). 2xx without an
 * ETag is `CAMVEIL_E_CLOUD_PROTOCOL`, retried. 403 (expired in transit, the receiver's clock, a bucket
 * policy being changed) is retried: the next attempt asks for a fresh URL. 408, 429 and 5xx are retried
 * with their Retry-After; other statuses refuse for good. Messages carry the status and the S3 code only,
 * never the store's text (some stores echo the string they signed).
 */
export function classifyStoreResponse(response: { status: number; headers: { get(name: string): string | null } }, body: string, now: number): PutOutcome {
  const { status } = response;
  if (status >= 200 && status < 300) {
    const etag = response.headers.get('etag');
    if (etag === null || etag.trim() === '') {
      return { kind: 'retry', error: new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `presigned upload: HTTP ${status} without an ETag`, { where }) };
    }
    return { kind: 'uploaded' };
  }
  const code = s3Code(body);
  const text = `presigned upload: the object store answered HTTP ${status}${code === undefined ? '' : ` ${code}`}`;
  if (status === 403 || status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now);
    const error = new CamveilError('CAMVEIL_E_UPLOAD_FAILED', text, { where });
    return retryAfterMs === undefined ? { kind: 'retry', error } : { kind: 'retry', error, retryAfterMs };
  }
  return { kind: 'reject', error: new CamveilError('CAMVEIL_E_UPLOAD_REJECTED', text, { where }) };
}

/** `<endpoint>/v1/uploads/<hub>/<objectId>`, keeping any path prefix the endpoint has: the presign request. */
export function uploadRequestUrl(endpoint: URL, hubPseudonym: string, objectId: string): URL {
  const url = new URL(endpoint);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/uploads/${encodeURIComponent(hubPseudonym)}/${encodeURIComponent(objectId)}`;
  url.search = '';
  url.hash = '';
  return url;
}
