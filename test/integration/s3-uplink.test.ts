import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, ListObjectVersionsCommand, PutBucketVersioningCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { DeletionRequests } from '../../src/uplink/deletion-requests.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { S3ObjectStore } from '../../src/uplink/s3-object-store.js';
import { Uploader, type StoreCheckReport, type UploadReport } from '../../src/uplink/uploader.js';
import { allowAllGate } from '../harness/allow-all-gate.js';
import { describeWithPeers } from '../harness/peers.js';
import { startS3FaultProxy } from '../harness/s3-fault-proxy.js';
import { ageDecrypt, openMultipartUploads, swiftUplinkSuite, WRONG_SECRET } from '../harness/s3-uplink-setup.js';
import { SWIFT_ACCESS_KEY } from '../harness/swift.js';
import { waitFor } from '../harness/wait.js';

const MiB = 1024 * 1024;
const HUB = 'hub_3kq7xw2mfa5zt4vd';
const PREFIX = 'camveil/households';

/**
 * The s3 transport against the real S3 peer (Debian's Swift with s3api): the real Uploader and Outbox send
 * sealed objects, small and multipart, which arrive byte for byte and open with Debian's `age -d`; deletion
 * requests remove them; what the bucket holds names nothing but ids; refusals, a missing bucket and a
 * store asking to slow down are handled as the uploader expects.
 */
describeWithPeers(['swift', 'age'], 'the s3 uplink transport against Swift s3api', () => {
  const env = swiftUplinkSuite();

  function store(bucket: string, options: Partial<ConstructorParameters<typeof S3ObjectStore>[0]> = {}): S3ObjectStore {
    const s = new S3ObjectStore({ endpoint: env.swift.endpoint, region: env.swift.region, bucket, prefix: PREFIX, forcePathStyle: true, credentialsFile: env.fx.credentialsFile, hubPseudonym: HUB, ...options });
    env.cleanups.push(() => s.close());
    return s;
  }

  function hub(remote: S3ObjectStore, name: string) {
    const db = openDatabase(join(env.fx.dir, name));
    const outbox = new Outbox(db);
    const outcomes: UploadReport[] = [];
    const checks: StoreCheckReport[] = [];
    const uploader = new Uploader({
      outbox,
      gate: allowAllGate,
      remote,
      logger: silentLogger(),
      backoffBaseMs: 100,
      backoffCapMs: 1000,
      probeIntervalMs: 1000,
      onOutcome: (r) => outcomes.push(r),
      onStoreCheck: (c) => checks.push(c),
    });
    env.cleanups.push(async () => {
      await uploader.stop();
      db.close();
    });
    return { db, outbox, uploader, outcomes, checks };
  }

  async function stored(bucket: string, key: string): Promise<Buffer> {
    const got = await env.swift.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await got.Body!.transformToByteArray());
  }

  it('uploads a small and a multipart object byte for byte (age -d opens them), lists, re-puts idempotently and deletes', async () => {
    const bucket = await env.swift.createBucket();
    const remote = store(bucket);
    const h = hub(remote, 'db-basic');
    const small = await env.fx.object(50_000, 'snapshot');
    const large = await env.fx.object(20 * MiB + 12_345, 'clip');
    h.outbox.enqueue(small);
    h.outbox.enqueue(large);
    h.uploader.start();
    await waitFor('both uploaded', () => [small, large].every((o) => h.outbox.get(o.objectId)?.state === 'uploaded'), 120_000);
    expect(h.checks).toEqual([{ ok: true, cleaned: 0 }]);

    for (const o of [small, large]) {
      const key = `${PREFIX}/${HUB}/${o.objectId}.age`;
      const body = await stored(bucket, key);
      expect(body.length).toBe(o.bytes);
      expect(body.equals(readFileSync(o.path))).toBe(true);
      expect(ageDecrypt(env.fx.identityFile, body).equals(o.plaintext)).toBe(true);
    }
    const listing = await remote.list();
    expect(listing.map((l) => [l.objectId, l.bytes]).sort()).toEqual([[small.objectId, small.bytes], [large.objectId, large.bytes]].sort());
    expect(listing.every((l) => typeof l.storedAt === 'string' && !Number.isNaN(Date.parse(l.storedAt)))).toBe(true);

    // A key under the hub's prefix that is not `<id>.age` is not an object of the hub's.
    await env.swift.client.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}/${HUB}/notes.txt`, Body: 'x' }));
    expect((await remote.list()).length).toBe(2);

    // The same id again replaces the object: still one object, the same bytes.
    const again = await remote.put({ objectId: small.objectId, bytes: small.bytes }, Readable.from([readFileSync(small.path)]), new AbortController().signal);
    expect(again).toEqual({ kind: 'uploaded' });
    expect((await remote.list()).filter((l) => l.objectId === small.objectId)).toEqual([expect.objectContaining({ objectId: small.objectId, bytes: small.bytes })]);

    // Deletion requests remove the objects; an id the bucket never held counts as deleted.
    const deletions = new DeletionRequests(h.db);
    deletions.add([small.objectId, large.objectId, 'never0stored0id']);
    expect(await deletions.flush(remote)).toEqual({ sent: 3, pending: 0 });
    expect(await remote.list()).toEqual([]);
  }, 180_000);

  it('stores nothing that names a camera, a person or a kind: keys are the prefix, the hub pseudonym and ids; no metadata', async () => {
    const bucket = await env.swift.createBucket();
    const remote = store(bucket);
    const h = hub(remote, 'db-scan');
    const objects = [await env.fx.object(1000, 'clip'), await env.fx.object(2000, 'snapshot'), await env.fx.object(9 * MiB, 'event')];
    for (const o of objects) h.outbox.enqueue({ ...o, cameraId: 'front-door-Alice' });
    h.uploader.start();
    await waitFor('all uploaded', () => objects.every((o) => h.outbox.get(o.objectId)?.state === 'uploaded'), 120_000);

    const listed = await env.swift.client.send(new ListObjectsV2Command({ Bucket: bucket }));
    const keys = (listed.Contents ?? []).map((c) => c.Key ?? '').sort();
    expect(keys).toEqual(objects.map((o) => `${PREFIX}/${HUB}/${o.objectId}.age`).sort());
    const forbidden = /front-door|alice|porch|clip|snapshot|event|person|face|camera/i;
    for (const key of keys) {
      expect(key.slice(PREFIX.length)).not.toMatch(forbidden);
      const head = await env.swift.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ContentType).toBe('application/octet-stream');
      expect(head.Metadata ?? {}).toEqual({});
      expect(JSON.stringify({ ...head, $metadata: undefined })).not.toMatch(forbidden);
    }
  }, 180_000);

  it('wrong credentials: CAMVEIL_E_UPLOAD_REJECTED naming the bucket, never the secret; the uploader waits, nothing marked failed', async () => {
    const bucket = await env.swift.createBucket();
    const remote = store(bucket, { credentialsFile: env.fx.wrongCredentialsFile });
    const o = await env.fx.object(3000);
    const outcome = await remote.put({ objectId: o.objectId, bytes: o.bytes }, Readable.from([readFileSync(o.path)]), new AbortController().signal);
    expect(outcome.kind).toBe('reject');
    const error = outcome.kind === 'reject' ? outcome.error : undefined;
    expect(error?.code).toBe('CAMVEIL_E_UPLOAD_REJECTED');
    expect(error?.message).toContain(`"${bucket}"`);
    expect(error?.message).toMatch(/SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId|Forbidden/);
    expect(`${error?.message} ${JSON.stringify(error)} ${String(error?.stack)}`).not.toContain(WRONG_SECRET);
    expect(error?.message).not.toContain(SWIFT_ACCESS_KEY);

    const h = hub(remote, 'db-wrong');
    h.outbox.enqueue(o);
    h.uploader.start();
    await waitFor('the check failed twice', () => h.checks.length >= 2, 60_000);
    const failure = h.checks[0]!;
    expect(failure).toMatchObject({ ok: false, code: 'CAMVEIL_E_UPLOAD_REJECTED' });
    expect(failure.ok ? '' : failure.message).toContain(`"${bucket}"`);
    expect(JSON.stringify(h.checks)).not.toContain(WRONG_SECRET);
    // The queue waits for a store it can use: nothing was tried, nothing failed.
    expect(h.outcomes).toEqual([]);
    expect(h.outbox.get(o.objectId)?.state).toBe('queued');
  }, 120_000);

  it('a bucket that does not exist: a clear error at start naming it; uploads wait and go once it exists', async () => {
    const bucket = `camveil-missing-${Date.now().toString(36)}`;
    const remote = store(bucket);
    const h = hub(remote, 'db-missing');
    const o = await env.fx.object(4000);
    h.outbox.enqueue(o);
    h.uploader.start();
    await waitFor('the check failed', () => h.checks.length >= 1, 60_000);
    expect(h.checks[0]).toMatchObject({ ok: false, code: 'CAMVEIL_E_UPLOAD_REJECTED' });
    const message = h.checks[0]!.ok ? '' : h.checks[0]!.message;
    expect(message).toContain(`"${bucket}"`);
    expect(message).toMatch(/does not exist/);
    expect(h.outbox.get(o.objectId)?.state).toBe('queued');
    expect(h.outcomes).toEqual([]);

    await env.swift.createBucket(bucket);
    await waitFor('uploaded once the bucket exists', () => h.outbox.get(o.objectId)?.state === 'uploaded', 60_000);
    expect(h.checks.at(-1)).toEqual({ ok: true, cleaned: 0 });
    expect((await stored(bucket, `${PREFIX}/${HUB}/${o.objectId}.age`)).length).toBe(o.bytes);
  }, 120_000);

  it('a store that refuses to list unfinished uploads at start is still used: the check passes with a warning', async () => {
    const bucket = await env.swift.createBucket();
    const proxy = await startS3FaultProxy(env.swift.port);
    env.cleanups.push(() => proxy.close());
    const remote = store(bucket, { endpoint: proxy.endpoint });
    const h = hub(remote, 'db-cleanup-refused');
    const o = await env.fx.object(5000);
    proxy.slowDown(1, { match: (method, path) => method === 'GET' && path.includes('uploads') });
    h.outbox.enqueue(o);
    h.uploader.start();
    await waitFor('uploaded', () => h.outbox.get(o.objectId)?.state === 'uploaded', 60_000);
    expect(h.checks).toEqual([{ ok: true, cleaned: 0, warning: expect.stringMatching(/^S3 cleanup of unfinished uploads to bucket ".+": SlowDown \(HTTP 503\)/) as string }]);
  }, 120_000);

  it('works with versioning on: uploads replace, deletion requests leave no current object', async () => {
    const bucket = await env.swift.createBucket();
    await env.swift.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    const remote = store(bucket);
    const h = hub(remote, 'db-versioned');
    const o = await env.fx.object(10 * MiB);
    h.outbox.enqueue(o);
    h.uploader.start();
    await waitFor('uploaded', () => h.outbox.get(o.objectId)?.state === 'uploaded', 120_000);
    expect(await remote.put({ objectId: o.objectId, bytes: o.bytes }, Readable.from([readFileSync(o.path)]), new AbortController().signal)).toEqual({ kind: 'uploaded' });
    expect((await remote.list()).map((l) => l.objectId)).toEqual([o.objectId]);
    const versions = await env.swift.client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    expect((versions.Versions ?? []).length).toBe(2);
    const deletions = new DeletionRequests(h.db);
    deletions.add([o.objectId]);
    expect(await deletions.flush(remote)).toEqual({ sent: 1, pending: 0 });
    expect(await remote.list()).toEqual([]);
  }, 120_000);

  it('503 SlowDown is retried with backoff (and its Retry-After), then the object is delivered', async () => {
    const bucket = await env.swift.createBucket();
    const proxy = await startS3FaultProxy(env.swift.port);
    env.cleanups.push(() => proxy.close());
    const remote = store(bucket, { endpoint: proxy.endpoint });
    const h = hub(remote, 'db-slowdown');
    const o = await env.fx.object(100_000);
    proxy.slowDown(3, { match: (method) => method === 'PUT', retryAfterSeconds: 1 });
    h.outbox.enqueue(o);
    h.uploader.start();
    await waitFor('delivered', () => h.outbox.get(o.objectId)?.state === 'uploaded', 120_000);

    expect(h.outcomes.map((r) => r.result)).toEqual(['retry', 'retry', 'retry', 'uploaded']);
    for (const r of h.outcomes.slice(0, 3)) {
      expect(r.code).toBe('CAMVEIL_E_UPLOAD_FAILED');
      expect(r.message).toContain('SlowDown');
      expect(r.message).toContain(`"${bucket}"`);
    }
    const puts = proxy.seen.filter((s) => s.method === 'PUT');
    expect(puts.map((s) => s.answered)).toEqual(['slowdown', 'slowdown', 'slowdown', 'forwarded']);
    expect((await stored(bucket, `${PREFIX}/${HUB}/${o.objectId}.age`)).equals(readFileSync(o.path))).toBe(true);
  }, 120_000);

  it('a store that takes the body and never answers is cut by the idle limit and the upload retried', async () => {
    const bucket = await env.swift.createBucket();
    const proxy = await startS3FaultProxy(env.swift.port);
    env.cleanups.push(() => proxy.close());
    const remote = store(bucket, { endpoint: proxy.endpoint, requestTimeoutMs: 1500 });
    const h = hub(remote, 'db-stall');
    const o = await env.fx.object(200_000);
    proxy.stall(1, (method) => method === 'PUT');
    h.outbox.enqueue(o);
    h.uploader.start();
    await waitFor('delivered', () => h.outbox.get(o.objectId)?.state === 'uploaded', 120_000);
    expect(h.outcomes.map((r) => r.result)).toEqual(['retry', 'uploaded']);
    expect(h.outcomes[0]).toMatchObject({ code: 'CAMVEIL_E_UPLOAD_FAILED', message: expect.stringMatching(/timed out/) as string });
    expect(proxy.seen.filter((s) => s.method === 'PUT').map((s) => s.answered)).toEqual(['stalled', 'forwarded']);
  }, 120_000);

  it('SlowDown answered to a part of a multipart upload aborts that upload on the server and delivers on the retry', async () => {
    const bucket = await env.swift.createBucket();
    const proxy = await startS3FaultProxy(env.swift.port);
    env.cleanups.push(() => proxy.close());
    const remote = store(bucket, { endpoint: proxy.endpoint });
    const h = hub(remote, 'db-slowdown-part');
    const o = await env.fx.object(17 * MiB);
    proxy.slowDown(1, { match: (method, path) => method === 'PUT' && path.includes('partNumber=2') });
    h.outbox.enqueue(o);
    h.uploader.start();
    await waitFor('delivered', () => h.outbox.get(o.objectId)?.state === 'uploaded', 120_000);
    expect(h.outcomes.map((r) => r.result)).toEqual(['retry', 'uploaded']);
    expect(proxy.seen.filter((s) => s.method === 'DELETE' && s.path.includes('uploadId=')).length).toBeGreaterThanOrEqual(1);
    expect(await openMultipartUploads(env.swift.client, bucket)).toEqual([]);
    expect((await stored(bucket, `${PREFIX}/${HUB}/${o.objectId}.age`)).equals(readFileSync(o.path))).toBe(true);
  }, 120_000);
});
