import { z } from 'zod';
import { CamveilError } from '../errors.js';
import { redactText } from '../redact.js';
import type { PutOutcome } from './remote-object-store.js';

/** At most this much of a response body is read: enough for an error message, not a way to fill RAM. */
export const MAX_RESPONSE_BYTES = 4096;

/** The receiver's answer to a stored object (see src/receiver/server.ts). Unknown keys are refused. */
export const uploadReceiptSchema = z.strictObject({
  objectId: z.string(),
  bytes: z.number().int().nonnegative(),
});

/** An error body as the receiver (and most JSON APIs) send it; other keys are tolerated. */
const errorBodySchema = z.object({ error: z.object({ message: z.string() }) });

/** Reads at most `limit` bytes of a response body, then cancels the rest; `onChunk` hears of each chunk. */
export async function readLimited(body: ReadableStream<Uint8Array> | null, limit = MAX_RESPONSE_BYTES, onChunk?: () => void): Promise<string> {
  if (body === null) return '';
  const reader = body.getReader();
  const parts: Buffer[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      onChunk?.();
      parts.push(Buffer.from(value));
      size += value.length;
    }
  } finally {
    if (size >= limit) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return Buffer.concat(parts).subarray(0, limit).toString('utf8');
}

/** Retry-After as delta-seconds or an HTTP date, in ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The server's own words from an error body: `{error:{message}}` JSON, else the text, shortened. */
export function serverMessage(body: string): string {
  let message = body.trim();
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(body));
    if (parsed.success) message = parsed.data.error.message;
  } catch {
    // Not JSON: keep the text.
  }
  message = redactText(message.replace(/\s+/g, ' '));
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

/**
 * Classifies a PUT's response. 2xx must carry the receipt for this object and size; a 2xx that does
 * not is `CAMVEIL_E_CLOUD_PROTOCOL` and retried (a misbehaving proxy or a half-deployed server may
 * recover, and re-sending is idempotent). 408, 429 and 5xx are retried; other statuses (4xx, and
 * redirects, which a streamed body cannot follow) are permanent.
 */
export function classifyResponse(
  response: { status: number; headers: { get(name: string): string | null } },
  body: string,
  expected: { objectId: string; bytes: number },
  now: number,
): PutOutcome {
  const { status } = response;
  const where = 'uplink';
  if (status >= 200 && status < 300) {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return { kind: 'retry', error: new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `HTTP ${status} with a body that is not JSON`, { where }) };
    }
    const receipt = uploadReceiptSchema.safeParse(json);
    if (!receipt.success) {
      const problems = receipt.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(body)'}: ${i.message}`).join('; ');
      return { kind: 'retry', error: new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `HTTP ${status} receipt is invalid: ${problems}`, { where }) };
    }
    const problems: string[] = [];
    if (receipt.data.objectId !== expected.objectId) problems.push('objectId: does not match the object sent');
    if (receipt.data.bytes !== expected.bytes) problems.push(`bytes: ${receipt.data.bytes} stored, ${expected.bytes} sent`);
    if (problems.length > 0) {
      return { kind: 'retry', error: new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `HTTP ${status} receipt: ${problems.join('; ')}`, { where }) };
    }
    return { kind: 'uploaded' };
  }
  const message = serverMessage(body);
  const text = `HTTP ${status}${message === '' ? '' : `: ${message}`}`;
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now);
    const error = new CamveilError('CAMVEIL_E_UPLOAD_FAILED', text, { where });
    return retryAfterMs === undefined ? { kind: 'retry', error } : { kind: 'retry', error, retryAfterMs };
  }
  return { kind: 'reject', error: new CamveilError('CAMVEIL_E_UPLOAD_REJECTED', text, { where }) };
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base·2^(attempt−1))]. */
export function backoffDelay(attempt: number, random: () => number, baseMs = 1000, capMs = 300_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.floor(random() * ceiling);
}
