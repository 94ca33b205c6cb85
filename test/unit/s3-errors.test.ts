import { S3ServiceException } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3Failure } from '../../src/uplink/s3-errors.js';
import { hubKeyPrefix, objectIdOfKey, objectKey } from '../../src/uplink/s3-keys.js';

/** An error shaped as the SDK throws it for an S3 error answer. */
function serviceError(name: string, status: number, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}): Error {
  const error = new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message: `server text for ${name}` });
  Object.defineProperty(error, '$response', { value: { statusCode: status, headers }, enumerable: false });
  return Object.assign(error, extra);
}

const NOW = Date.parse('2026-12-05T12:00:00Z');

describe('s3Failure', () => {
  it('refuses for good wrong credentials, access denied and a missing bucket, naming the bucket and the code, not the server text', () => {
    for (const [code, status] of [
      ['SignatureDoesNotMatch', 403],
      ['InvalidAccessKeyId', 403],
      ['AccessDenied', 403],
      ['NoSuchBucket', 404],
    ] as const) {
      const f = s3Failure(serviceError(code, status, {}, { AWSAccessKeyId: 'AKIAEXAMPLE', StringToSign: 'AWS4-HMAC-SHA256…' }), 'cams', 'upload', NOW);
      expect(f.retry).toBe(false);
      expect(f.error.code).toBe('CAMVEIL_E_UPLOAD_REJECTED');
      expect(f.error.message).toMatch(new RegExp(`^S3 upload to bucket "cams": ${code} \\(HTTP ${status}\\)`));
      expect(`${f.error.message} ${JSON.stringify(f.error)}`).not.toMatch(/AKIAEXAMPLE|AWS4-HMAC|server text/);
      expect(f.error.cause).toBeUndefined();
    }
  });

  it('retries SlowDown, throttling, 5xx, 408/429 and clock skew, with the Retry-After the store sent', () => {
    const slow = s3Failure(serviceError('SlowDown', 503, { 'Retry-After': '7' }), 'cams', 'upload', NOW);
    expect(slow).toMatchObject({ retry: true, retryAfterMs: 7000, error: { code: 'CAMVEIL_E_UPLOAD_FAILED' } });
    expect(slow.error.message).toContain('SlowDown (HTTP 503): the store asks the hub to slow down');
    for (const [code, status] of [
      ['InternalError', 500],
      ['ServiceUnavailable', 503],
      ['RequestTimeout', 400],
      ['RequestTimeTooSkewed', 403],
      ['TooManyRequests', 429],
      ['Whatever', 408],
    ] as const) {
      expect(s3Failure(serviceError(code, status), 'cams', 'upload', NOW), code).toMatchObject({ retry: true, error: { code: 'CAMVEIL_E_UPLOAD_FAILED' } });
    }
    expect(s3Failure(serviceError('SlowDown', 503), 'cams', 'upload', NOW).retryAfterMs).toBeUndefined();
  });

  it('names HEAD answers without a body by their status, and retries network errors and socket timeouts', () => {
    expect(s3Failure(serviceError('NotFound', 404), 'cams', 'check', NOW).error.message).toBe('S3 check to bucket "cams": NotFound (HTTP 404): the bucket does not exist');
    expect(s3Failure(serviceError('403', 403), 'cams', 'check', NOW).error.message).toMatch(/Forbidden \(HTTP 403\)/);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    expect(s3Failure(refused, 'cams', 'upload', NOW)).toMatchObject({ retry: true, error: { code: 'CAMVEIL_E_UPLOAD_FAILED', message: 'S3 upload to bucket "cams": network error: ECONNREFUSED' } });
    const timeout = Object.assign(new Error('socket timed out'), { name: 'TimeoutError' });
    expect(s3Failure(timeout, 'cams', 'upload', NOW).error.message).toBe('S3 upload to bucket "cams": timed out (no progress)');
  });
});

describe('s3 keys', () => {
  it('are <prefix>/<hub>/<id>.age, and a listing keeps only such keys', () => {
    const hub = hubKeyPrefix('households/eu', 'hub_x');
    expect(hub).toBe('households/eu/hub_x/');
    expect(hubKeyPrefix(undefined, 'hub_x')).toBe('hub_x/');
    expect(objectKey(hub, 'abc234')).toBe('households/eu/hub_x/abc234.age');
    expect(objectIdOfKey(hub, 'households/eu/hub_x/abc234.age')).toBe('abc234');
    for (const key of ['households/eu/hub_x/abc234.txt', 'households/eu/hub_x/sub/abc234.age', 'households/eu/hub_y/abc234.age', 'households/eu/hub_x/.age']) {
      expect(objectIdOfKey(hub, key), key).toBeUndefined();
    }
  });
});
