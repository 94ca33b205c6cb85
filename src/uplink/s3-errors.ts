import { CamveilError } from '../errors.js';
import { parseRetryAfter } from './response.js';

/**
 * What an S3 call that threw means for the uploader. An error from the SDK carries the HTTP status
 * (`$metadata.httpStatusCode`), the S3 error code as its `name` (`NoSuchBucket`, `SlowDown`) and the raw
 * response (`$response`, for Retry-After); a network error carries a Node `code` (`ECONNREFUSED`), a socket
 * timeout the name `TimeoutError`. Messages name the bucket, the S3 code and the status, never the server's
 * own text: some stores echo the access key or the string they signed in it.
 */
export interface S3Failure {
  /** True when trying again later may succeed (network, timeouts, throttling, 5xx). */
  retry: boolean;
  error: CamveilError;
  retryAfterMs?: number;
}

/** S3 error codes that pass with time whatever their status (throttling, clock skew, expired session tokens). */
const PASSING_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'TooManyRequests',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'ServiceUnavailable',
  'InternalError',
  'ExpiredToken',
  'TokenRefreshRequired',
  'OperationAborted',
]);

/** What a refusal means, for the codes a household meets when the bucket or the key is wrong. */
const EXPLAINED: Record<string, string> = {
  NoSuchBucket: 'the bucket does not exist',
  NotFound: 'the bucket does not exist',
  InvalidAccessKeyId: 'the access key is not known to the store',
  SignatureDoesNotMatch: 'the secret key does not match the access key',
  AccessDenied: 'the credentials may not write to this bucket and prefix',
  Forbidden: 'the credentials are refused or may not use this bucket',
  InvalidBucketName: 'the bucket name is not valid for this store',
  PermanentRedirect: 'the bucket is in another region (set region, or the endpoint)',
  AuthorizationHeaderMalformed: 'the region does not match the bucket',
  SlowDown: 'the store asks the hub to slow down',
  RequestTimeTooSkewed: "the hub's clock differs too much from the store's",
  ExpiredToken: 'the session token has expired',
};

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $response?: { statusCode?: unknown; headers?: Record<string, string | undefined> };
  cause?: unknown;
}

/** The HTTP status of an SDK error, when a response came. */
export function s3Status(error: unknown): number | undefined {
  const e = (error ?? {}) as SdkErrorShape;
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The S3 error code (`NoSuchBucket`), when the store answered with one; HEAD answers have none and get `NotFound`/`Forbidden`. */
export function s3Code(error: unknown): string | undefined {
  const e = (error ?? {}) as SdkErrorShape;
  const status = s3Status(error);
  if (status === undefined) return undefined;
  const name = typeof e.name === 'string' ? e.name : undefined;
  // The SDK names an error it could not parse after the status ("403", "UnknownError"): say what the status means.
  if (name === undefined || /^\d+$/.test(name) || name === 'UnknownError' || name === 'Error') {
    if (status === 403) return 'Forbidden';
    if (status === 404) return 'NotFound';
    if (status === 503) return 'ServiceUnavailable';
    return undefined;
  }
  return name;
}

/**
 * Classifies a failed S3 call of bucket `bucket`; `operation` says what was tried (`upload`, `listing`).
 * 408, 429, 5xx, the passing codes, network errors and socket timeouts are worth a retry
 * (`CAMVEIL_E_UPLOAD_FAILED`, with the store's Retry-After); other 4xx refuse for good
 * (`CAMVEIL_E_UPLOAD_REJECTED`): wrong credentials, no such bucket, access denied.
 */
export function s3Failure(error: unknown, bucket: string, operation: string, now: number): S3Failure {
  if (error instanceof CamveilError) return { retry: error.code !== 'CAMVEIL_E_UPLOAD_REJECTED', error };
  const status = s3Status(error);
  const where = 'uplink';
  if (status === undefined) {
    const e = (error ?? {}) as SdkErrorShape & { cause?: SdkErrorShape };
    const why =
      e.name === 'TimeoutError'
        ? 'timed out (no progress)'
        : `network error: ${String((typeof e.code === 'string' ? e.code : undefined) ?? (typeof e.cause?.code === 'string' ? e.cause.code : undefined) ?? (typeof e.name === 'string' ? e.name : 'unknown'))}`;
    return { retry: true, error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `S3 ${operation} to bucket "${bucket}": ${why}`, { where, cause: error }) };
  }
  const code = s3Code(error);
  const explained = code === undefined ? undefined : EXPLAINED[code];
  const text = `S3 ${operation} to bucket "${bucket}": ${code ?? 'error'} (HTTP ${status})${explained === undefined ? '' : `: ${explained}`}`;
  if (status === 408 || status === 429 || status >= 500 || (code !== undefined && PASSING_CODES.has(code))) {
    const headers = ((error ?? {}) as SdkErrorShape).$response?.headers ?? {};
    const header = Object.entries(headers).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
    const retryAfterMs = parseRetryAfter(header ?? null, now);
    // No `cause`: the SDK's error carries the server's fields (the access key id, the string it signed).
    const failure = new CamveilError('CAMVEIL_E_UPLOAD_FAILED', text, { where });
    return retryAfterMs === undefined ? { retry: true, error: failure } : { retry: true, error: failure, retryAfterMs };
  }
  return { retry: false, error: new CamveilError('CAMVEIL_E_UPLOAD_REJECTED', text, { where }) };
}
