import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { headerEnd } from '../../src/crypto/age-header.js';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { CamveilError } from '../../src/errors.js';
import { openDatabase } from '../../src/store/database.js';
import { allowAllGate } from '../harness/allow-all-gate.js';
import { ageHeaderProblem, mayBeginAgeHeader } from '../../src/receiver/age-syntax.js';
import { uplinkSchema } from '../../src/config/schema.js';
import { chooseEndpoint, hubUrl, objectUrl, validateEndpoint } from '../../src/uplink/endpoint.js';
import { remoteStoreFor } from '../../src/uplink/remote-store-factory.js';
import { rulesFor } from '../../src/policy/region-rules.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { backoffDelay, classifyResponse, parseRetryAfter } from '../../src/uplink/response.js';

const ID = (c: string) => c.repeat(26);

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    return error instanceof CamveilError ? error.code : 'not-camveil';
  }
  return undefined;
}

describe('upload endpoints', () => {
  it('requires https, allowing http only to loopback', () => {
    expect(validateEndpoint('https://cloud.example/base').href).toBe('https://cloud.example/base');
    for (const ok of ['http://127.0.0.1:8080', 'http://127.9.8.7', 'http://[::1]:9000', 'http://localhost:1', 'http://LOCALHOST']) {
      expect(validateEndpoint(ok).protocol).toBe('http:');
    }
    for (const bad of ['http://cloud.example', 'http://128.0.0.1', 'http://10.0.0.2', 'http://[::2]', 'http://localhost.evil.example', 'ftp://x']) {
      expect(codeOf(() => validateEndpoint(bad))).toBe('CAMVEIL_E_ENDPOINT_INSECURE');
    }
    expect(codeOf(() => validateEndpoint('https://u:secret@cloud.example'))).toBe('CAMVEIL_E_ENDPOINT_INSECURE');
    expect(codeOf(() => validateEndpoint('not a url'))).toBe('CAMVEIL_E_CONFIG_INVALID');
  });

  it('never shows credentials in its errors', () => {
    try {
      validateEndpoint('http://u:hunter2@cloud.example');
    } catch (error) {
      expect(String((error as Error).message)).not.toContain('hunter2');
    }
  });

  it('chooses the zone endpoint and names a missing zone', () => {
    const zones = { eu: 'https://eu.cloud.example', us: 'http://cloud.example' };
    expect(chooseEndpoint(zones, 'eu')).toBe('https://eu.cloud.example');
    expect(() => chooseEndpoint(zones, 'cn')).toThrow(/"cn".*configured: eu, us/);
    expect(() => chooseEndpoint(zones, 'toString')).toThrow(/"toString"/);
  });

  it("the factory builds the region's zone store from the config, checking its URL, and nothing while uploads are off", () => {
    const uplink = (endpoints: Record<string, unknown>, enabled = true) => uplinkSchema.parse({ enabled, endpoints, tokenFile: '/nonexistent/token' });
    const hub = (region: string) => ({ id: 'h', region });
    const eu = remoteStoreFor({ hub: hub('DE'), uplink: uplink({ eu: 'https://eu.cloud.example/base', us: { type: 'http', url: 'http://cloud.example' } }) }, 'hub_aaaaaaaaaaaaaaaa');
    expect(eu?.zone).toBe('eu');
    expect(eu?.remote.description).toEqual({ type: 'http', origin: 'https://eu.cloud.example/' });
    // The US endpoint is plain http to a host that is not loopback: refused when the hub would use it.
    expect(codeOf(() => remoteStoreFor({ hub: hub('US-CA'), uplink: uplink({ us: { type: 'http', url: 'http://cloud.example' } }) }, 'hub_aaaaaaaaaaaaaaaa'))).toBe('CAMVEIL_E_ENDPOINT_INSECURE');
    expect(codeOf(() => remoteStoreFor({ hub: hub('CN'), uplink: uplink({ eu: 'https://eu.cloud.example' }) }, 'hub_aaaaaaaaaaaaaaaa'))).toBe('CAMVEIL_E_CONFIG_INVALID');
    expect(remoteStoreFor({ hub: hub('DE'), uplink: uplink({ eu: 'https://eu.cloud.example' }, false) }, 'hub_aaaaaaaaaaaaaaaa')).toBeUndefined();
  });

  it('builds object URLs under the endpoint path', () => {
    expect(objectUrl(new URL('https://c.example/base/'), 'hub_aaaaaaaaaaaaaaaa', ID('b')).href).toBe(
      `https://c.example/base/v1/objects/hub_aaaaaaaaaaaaaaaa/${ID('b')}`,
    );
    expect(hubUrl(new URL('https://c.example/base?x=1#y'), 'hub_aaaaaaaaaaaaaaaa').href).toBe('https://c.example/base/v1/objects/hub_aaaaaaaaaaaaaaaa');
  });

  it('residency zones come from the region rules (policy/), not from the uplink', () => {
    expect(rulesFor('CN').residencyZone).toBe('cn');
    expect(rulesFor('DE').residencyZone).toBe('eu');
    expect(rulesFor('US-CA').residencyZone).toBe('us');
  });

  it('has an allow-all gate for uplink unit tests, with a machine-readable reason', () => {
    expect(allowAllGate.mayUpload({ objectId: ID('a'), kind: 'clip' })).toEqual({ allowed: true, reason: 'test-allow-all' });
  });
});

describe('outbox', () => {
  let dir: string;
  let db: Database.Database;
  let clock = 1_000;
  const now = () => clock;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'camveil-outbox-'));
    db = openDatabase(dir);
    clock = 1_000;
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const entry = (c: string) => ({ objectId: ID(c), path: join(dir, `${ID(c)}.age`), bytes: 10, kind: 'clip' });

  it('enqueues idempotently and walks queued → uploading → uploaded', () => {
    const outbox = new Outbox(db, { now });
    expect(outbox.enqueue(entry('a'))).toBe(true);
    expect(outbox.enqueue({ ...entry('a'), bytes: 99 })).toBe(false);
    expect(outbox.get(ID('a'))).toMatchObject({ state: 'queued', bytes: 10, attempts: 0, nextAttemptAt: 1_000, createdAt: 1_000 });
    expect(outbox.nextDue(999)).toBeUndefined();
    expect(outbox.nextDue(1_000)?.objectId).toBe(ID('a'));
    outbox.markUploading(ID('a'));
    expect(outbox.nextDue(5_000)).toBeUndefined();
    expect(() => outbox.markUploading(ID('a'))).toThrow(/is uploading/);
    clock = 2_000;
    outbox.markUploaded(ID('a'));
    expect(outbox.get(ID('a'))).toMatchObject({ state: 'uploaded', attempts: 1, updatedAt: 2_000, lastError: null });
    expect(outbox.stats()).toEqual({ queued: 0, uploading: 0, uploaded: 1, failed: 0, oldestQueuedAt: null });
  });

  it('retries later, fails for good, and releases without counting an attempt', () => {
    const outbox = new Outbox(db, { now });
    outbox.enqueue(entry('a'));
    clock = 1_500;
    outbox.enqueue(entry('b'));
    outbox.markUploading(ID('a'));
    outbox.retryLater(ID('a'), { code: 'CAMVEIL_E_UPLOAD_FAILED', message: 'HTTP 503' }, 4_000);
    expect(outbox.get(ID('a'))).toMatchObject({ state: 'queued', attempts: 1, lastErrorCode: 'CAMVEIL_E_UPLOAD_FAILED', nextAttemptAt: 5_500 });
    expect(outbox.nextDue(2_000)?.objectId).toBe(ID('b'));
    expect(outbox.nextWakeAt()).toBe(1_500);
    outbox.release(ID('b'), { code: 'gate', message: 'gate: no' }, 100);
    expect(outbox.get(ID('b'))).toMatchObject({ state: 'queued', attempts: 0, lastError: 'gate: no', nextAttemptAt: 1_600 });
    outbox.markUploading(ID('b'));
    outbox.markFailed(ID('b'), { code: 'CAMVEIL_E_UPLOAD_REJECTED', message: 'HTTP 403: bucket closed' });
    expect(outbox.get(ID('b'))).toMatchObject({ state: 'failed', attempts: 1, lastError: 'HTTP 403: bucket closed' });
    expect(outbox.nextDue(1e12)?.objectId).toBe(ID('a'));
    expect(outbox.stats()).toEqual({ queued: 1, uploading: 0, uploaded: 0, failed: 1, oldestQueuedAt: 1_000 });
  });

  it('expediteQueued brings every backed-off item forward to the given time, leaving gate holds, items already due and other states alone', () => {
    const outbox = new Outbox(db, { now });
    for (const c of ['a', 'b', 'c', 'd', 'e', 'f']) outbox.enqueue(entry(c));
    const failed = { code: 'CAMVEIL_E_UPLOAD_FAILED', message: 'network error: ECONNREFUSED' };
    for (const [c, delay] of [['a', 300_000], ['b', 120_000], ['c', 500]] as const) {
      outbox.markUploading(ID(c));
      outbox.retryLater(ID(c), failed, delay);
    }
    outbox.release(ID('d'), { code: 'gate', message: 'gate: no-consent' }, 60_000);
    outbox.markUploading(ID('e'));
    outbox.markUploaded(ID('e'));
    // f: never tried, due since 1 000.
    expect(outbox.nextBackingOff()?.objectId).toBe(ID('c'));
    clock = 1_200;
    expect(outbox.expediteQueued(1_300)).toBe(3);
    expect(outbox.get(ID('a'))?.nextAttemptAt).toBe(1_300);
    expect(outbox.get(ID('b'))?.nextAttemptAt).toBe(1_300);
    expect(outbox.get(ID('c'))?.nextAttemptAt).toBe(1_300); // due at 1 500 before: brought forward too
    expect(outbox.get(ID('d'))?.nextAttemptAt).toBe(61_000); // the gate's recheck is not the endpoint's to shorten
    expect(outbox.get(ID('e'))?.state).toBe('uploaded');
    expect(outbox.get(ID('f'))?.nextAttemptAt).toBe(1_000);
    // Due in queue order: f (due longest), then a, b, c as they were created.
    const order: string[] = [];
    for (let item = outbox.nextDue(1_300); item !== undefined; item = outbox.nextDue(1_300)) {
      order.push(item.objectId);
      outbox.markUploading(item.objectId);
    }
    expect(order).toEqual([ID('f'), ID('a'), ID('b'), ID('c')]);
  });

  it('returns items a crash left uploading to queued when reopened', () => {
    const first = new Outbox(db, { now });
    first.enqueue(entry('a'));
    first.enqueue(entry('b'));
    first.markUploading(ID('a'));
    db.close();
    db = openDatabase(dir);
    const reopened = new Outbox(db, { now });
    expect(reopened.get(ID('a'))?.state).toBe('queued');
    expect(reopened.stats()).toMatchObject({ queued: 2, uploading: 0 });
  });

  it('destroyQueued deletes queued and uploading rows and their files, and keeps the rest', () => {
    const outbox = new Outbox(db, { now });
    for (const c of ['a', 'b', 'c', 'd']) {
      outbox.enqueue(entry(c));
      writeFileSync(entry(c).path, 'age ciphertext');
    }
    outbox.enqueue(entry('e')); // its file is already gone: not an error
    outbox.markUploading(ID('b'));
    outbox.markUploading(ID('c'));
    outbox.markUploaded(ID('c'));
    outbox.markUploading(ID('d'));
    outbox.markFailed(ID('d'), { code: 'x', message: 'y' });
    expect(outbox.destroyQueued().sort()).toEqual([ID('a'), ID('b'), ID('e')]);
    expect([existsSync(entry('a').path), existsSync(entry('b').path)]).toEqual([false, false]);
    expect([existsSync(entry('c').path), existsSync(entry('d').path)]).toEqual([true, true]);
    expect(outbox.stats()).toEqual({ queued: 0, uploading: 0, uploaded: 1, failed: 1, oldestQueuedAt: null });
  });

  it('destroyIfQueued withdraws one queued item and its file, and leaves any other state alone', () => {
    const outbox = new Outbox(db, { now });
    for (const c of ['a', 'b', 'c']) {
      outbox.enqueue(entry(c));
      writeFileSync(entry(c).path, 'age ciphertext');
    }
    outbox.markUploading(ID('b'));
    outbox.markUploading(ID('c'));
    outbox.markUploaded(ID('c'));
    expect([ID('a'), ID('b'), ID('c'), ID('d')].map((id) => outbox.destroyIfQueued(id))).toEqual([true, false, false, false]);
    expect([existsSync(entry('a').path), existsSync(entry('b').path), existsSync(entry('c').path)]).toEqual([false, true, true]);
    expect(outbox.get(ID('a'))).toBeUndefined();
    expect(outbox.stats()).toMatchObject({ queued: 0, uploading: 1, uploaded: 1 });
  });
});

describe('cloud responses', () => {
  const expected = { objectId: ID('a'), bytes: 42 };
  const res = (status: number, headers: Record<string, string> = {}) => ({ status, headers: new Headers(headers) });

  it('accepts only a matching receipt on 2xx; anything else is a retried protocol error', () => {
    expect(classifyResponse(res(200), JSON.stringify(expected), expected, 0)).toEqual({ kind: 'uploaded' });
    for (const body of ['garbage', '{}', JSON.stringify({ ...expected, bytes: 41 }), JSON.stringify({ ...expected, objectId: ID('b') }), JSON.stringify({ ...expected, extra: 1 })]) {
      const outcome = classifyResponse(res(201), body, expected, 0);
      expect(outcome.kind).toBe('retry');
      expect(outcome.kind !== 'uploaded' && outcome.error.code).toBe('CAMVEIL_E_CLOUD_PROTOCOL');
    }
  });

  it('retries 408, 429 and 5xx with Retry-After, rejects other 4xx with the server message', () => {
    expect(classifyResponse(res(503, { 'retry-after': '7' }), '', expected, 0)).toMatchObject({ kind: 'retry', retryAfterMs: 7000 });
    expect(classifyResponse(res(429), '', expected, 0)).toMatchObject({ kind: 'retry' });
    expect(classifyResponse(res(408), '', expected, 0)).toMatchObject({ kind: 'retry' });
    const rejected = classifyResponse(res(403), JSON.stringify({ error: { message: 'bucket closed' } }), expected, 0);
    expect(rejected.kind).toBe('reject');
    expect(rejected.kind === 'reject' && rejected.error.message).toBe('HTTP 403: bucket closed');
    expect(classifyResponse(res(400), 'plain words', expected, 0)).toMatchObject({ kind: 'reject' });
    expect(parseRetryAfter(new Date(60_000).toUTCString(), 0)).toBe(60_000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
  });

  it('backs off exponentially with full jitter up to the cap', () => {
    expect(backoffDelay(1, () => 0.999, 1000, 300_000)).toBe(999);
    expect(backoffDelay(4, () => 0.5, 1000, 300_000)).toBe(4000);
    expect(backoffDelay(40, () => 0.999, 1000, 300_000)).toBe(299_700);
    expect(backoffDelay(3, () => 0, 1000, 300_000)).toBe(0);
  });
});

describe('age header syntax', () => {
  it('accepts headers the crypto module writes, and refuses broken ones', async () => {
    const identity = await generateX25519Identity();
    const file = await encryptToBuffer([await identityToRecipient(identity)], Buffer.from('hello'));
    const header = file.subarray(0, headerEnd(file, 0));
    expect(ageHeaderProblem(header)).toBeUndefined();
    const text = header.toString('ascii');
    const broken = [
      text.replace('age-encryption.org/v1', 'age-encryption.org/v2'),
      text.replace(/\n--- [^\n]+\n$/, '\n--- short\n'),
      text.replace('-> X25519 ', '->  X25519 '),
      text.replace(/^(age-encryption\.org\/v1\n)-> [^\n]+\n[^\n]*\n/, '$1'),
      `${text}extra\n`,
      text.slice(0, -1),
    ];
    for (const b of broken) expect(ageHeaderProblem(Buffer.from(b, 'ascii'))).toBeDefined();
    expect(mayBeginAgeHeader(Buffer.from('age-enc'))).toBe(true);
    expect(mayBeginAgeHeader(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe(false);
  });
});
