import { describe, expect, it } from 'vitest';
import { redactText, redactUrl } from '../../src/redact.js';

/** A presigned S3 URL as @aws-sdk/s3-request-presigner makes it (values invented). */
const PRESIGNED =
  'https://s3.example.net/bucket/p/hub_abcdefghijklmnop/x.age?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD' +
  '&X-Amz-Credential=AKIAEXAMPLEKEY123%2F20261205%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261205T111307Z&X-Amz-Expires=300' +
  '&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLESESSION&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0' +
  '&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&x-id=PutObject';
const SECRETS = ['AKIAEXAMPLEKEY123', 'FwoGZXIvYXdzEXAMPLESESSION', '0f1e2d3c4b5a6978'];

describe('redaction of presigned URLs', () => {
  it('redactUrl masks the signature, the credential scope and the session token, and keeps the rest', () => {
    const out = redactUrl(PRESIGNED);
    for (const secret of SECRETS) expect(out).not.toContain(secret);
    const params = new URL(out).searchParams;
    expect(params.get('X-Amz-Signature')).toBe('***');
    expect(params.get('X-Amz-Credential')).toBe('***');
    expect(params.get('X-Amz-Security-Token')).toBe('***');
    expect(params.get('X-Amz-Expires')).toBe('300');
    expect(new URL(out).pathname).toBe('/bucket/p/hub_abcdefghijklmnop/x.age');
  });

  it('redactText masks them in free text, any case, and SigV2 and GCS forms too', () => {
    const text = `PUT failed for ${PRESIGNED} (status 403); retry with ${PRESIGNED.toLowerCase()}`;
    const out = redactText(text);
    for (const secret of [...SECRETS, ...SECRETS.map((s) => s.toLowerCase())]) expect(out).not.toContain(secret);
    expect(out).toContain('X-Amz-Signature=***');
    expect(out).toContain('status 403');
    const v2 = redactText('https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIAOLDSTYLE&Expires=1700000000&Signature=abc%2Bdef%3D');
    expect(v2).not.toContain('AKIAOLDSTYLE');
    expect(v2).not.toContain('abc%2Bdef');
    expect(v2).toContain('Expires=1700000000');
    const gcs = redactText('https://storage.googleapis.com/b/k?X-Goog-Credential=svc%40p.iam&X-Goog-Signature=deadbeef00');
    expect(gcs).not.toContain('deadbeef00');
    expect(gcs).not.toContain('svc%40p.iam');
  });

  it('a signature inside XML or JSON stops at the closing delimiter', () => {
    expect(redactText('<Url>https://h/k?X-Amz-Signature=abcdef0123</Url>')).toBe('<Url>https://h/k?X-Amz-Signature=***</Url>');
    expect(redactText('{"url":"https://h/k?X-Amz-Signature=abcdef0123"}')).toBe('{"url":"https://h/k?X-Amz-Signature=***"}');
  });
});
