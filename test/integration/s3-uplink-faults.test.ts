import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListPartsCommand } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { Gate } from '../../src/policy/gate.js';
import { openDatabase } from '../../src/store/database.js';
import { cutUploads } from '../../src/uplink/local-only.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { S3ObjectStore } from '../../src/uplink/s3-object-store.js';
import { Uploader, type UploadReport } from '../../src/uplink/uploader.js';
import { describeWithPeers } from '../harness/peers.js';
import { startS3FaultProxy } from '../harness/s3-fault-proxy.js';
import { ageDecrypt, openMultipartUploads, swiftUplinkSuite, waitForAsync } from '../harness/s3-uplink-setup.js';
import { spawnUplinkWorker } from '../harness/uplink-worker-process.js';
import { waitFor } from '../harness/wait.js';

const MiB = 1024 * 1024;
const HUB = 'hub_7hx2pq4mna6ze3wb';

/**
 * The s3 transport when an upload is cut: withdrawal in the middle of a multipart upload (the bytes stop,
 * and the multipart upload is aborted on the server, so neither parts nor an object are left), and a hub
 * killed with SIGKILL mid multipart (the restarted uploader's check removes the orphan parts, then the
 * object is delivered whole).
 */
describeWithPeers(['swift', 'age'], 'the s3 uplink transport cut mid multipart (Swift s3api)', () => {
  const env = swiftUplinkSuite();

  it('withdrawal mid multipart: the bytes stop, and no multipart upload and no object are left', async () => {
    const bucket = await env.swift.createBucket();
    const proxy = await startS3FaultProxy(env.swift.port);
    env.cleanups.push(() => proxy.close());
    // 4 MiB/s: a 30 MiB object takes several seconds, long enough to be cut in the middle on any machine.
    const remote = new S3ObjectStore({
      endpoint: proxy.endpoint,
      region: env.swift.region,
      bucket,
      forcePathStyle: true,
      credentialsFile: env.fx.credentialsFile,
      hubPseudonym: HUB,
      bandwidthBytesPerSecond: 4 * MiB,
    });
    env.cleanups.push(() => remote.close());
    const db = openDatabase(join(env.fx.dir, 'db-withdraw'));
    const outbox = new Outbox(db);
    let allowed = true;
    const gate: Gate = { mayUpload: () => (allowed ? { allowed: true, reason: 'test' } : { allowed: false, reason: 'local-only' }) };
    const outcomes: UploadReport[] = [];
    const uploader = new Uploader({ outbox, gate, remote, logger: silentLogger(), onOutcome: (r) => outcomes.push(r) });
    env.cleanups.push(async () => {
      await uploader.stop();
      db.close();
    });
    const o = await env.fx.object(30 * MiB);
    outbox.enqueue(o);
    uploader.start();
    // Mid multipart: the upload exists on the server and its first part is stored.
    await waitForAsync(
      'a part stored',
      async () => {
        const open = await openMultipartUploads(env.swift.client, bucket);
        if (open.length === 0) return false;
        const parts = await env.swift.client.send(new ListPartsCommand({ Bucket: bucket, Key: open[0]![0], UploadId: open[0]![1] }));
        return (parts.Parts ?? []).length >= 1;
      },
      120_000,
    );
    expect(uploader.uploading()).toEqual([o.objectId]);

    allowed = false;
    const began = performance.now();
    const destroyed = await cutUploads(uploader, outbox, 'local-only');
    const bytesAtReturn = proxy.bytesForwarded();
    // A figure for the log, not an assertion: the cut includes AbortMultipartUpload's round trip.
    console.log(`s3 withdrawal mid multipart: cut returned ${Math.round(performance.now() - began)} ms after it began, ${bytesAtReturn} of ${o.bytes} bytes sent`);
    expect(destroyed).toEqual([o.objectId]);
    expect(outcomes.map((r) => [r.result, r.code])).toEqual([['aborted', 'CAMVEIL_E_UPLOAD_ABORTED']]);
    // The multipart upload is aborted on the server (in the background): no multipart upload, no object.
    await remote.cleanupsSettled();
    expect(await openMultipartUploads(env.swift.client, bucket)).toEqual([]);
    await expect(env.swift.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${HUB}/${o.objectId}.age` }))).rejects.toMatchObject({ name: 'NotFound' });
    expect(bytesAtReturn).toBeLessThan(o.bytes);
    // Nothing more is sent: a new object is held by the gate, and the byte count stays where it was.
    const later = await env.fx.object(1000);
    outbox.enqueue(later);
    uploader.kick();
    await waitFor('the gate held the new object', () => outbox.get(later.objectId)?.lastErrorCode === 'gate', 60_000);
    expect(proxy.bytesForwarded()).toBe(bytesAtReturn);
  }, 180_000);

  it('withdrawal while a part is on the wire: the part request is cut, nothing is completed, no multipart upload is left', async () => {
    const bucket = await env.swift.createBucket();
    const proxy = await startS3FaultProxy(env.swift.port);
    env.cleanups.push(() => proxy.close());
    // The store reads 2 MiB/s: an 8 MiB part stays on the wire for seconds.
    proxy.readBytesPerSecond(2 * MiB);
    const remote = new S3ObjectStore({ endpoint: proxy.endpoint, region: env.swift.region, bucket, forcePathStyle: true, credentialsFile: env.fx.credentialsFile, hubPseudonym: HUB });
    env.cleanups.push(() => remote.close());
    const db = openDatabase(join(env.fx.dir, 'db-withdraw-wire'));
    const outbox = new Outbox(db);
    let allowed = true;
    const gate: Gate = { mayUpload: () => (allowed ? { allowed: true, reason: 'test' } : { allowed: false, reason: 'local-only' }) };
    const outcomes: UploadReport[] = [];
    const uploader = new Uploader({ outbox, gate, remote, logger: silentLogger(), onOutcome: (r) => outcomes.push(r) });
    env.cleanups.push(async () => {
      await uploader.stop();
      db.close();
    });
    const o = await env.fx.object(20 * MiB);
    outbox.enqueue(o);
    uploader.start();
    await waitFor('a part on the wire', () => proxy.seen.some((s) => s.method === 'PUT' && s.path.includes('partNumber=')) && proxy.bytesForwarded() > 1 * MiB, 120_000);
    expect(proxy.openRequests()).toBeGreaterThanOrEqual(1);

    allowed = false;
    const began = performance.now();
    expect(await cutUploads(uploader, outbox, 'local-only')).toEqual([o.objectId]);
    console.log(`s3 withdrawal with a part on the wire: cut returned ${Math.round(performance.now() - began)} ms after it began`);
    expect(outcomes.map((r) => [r.result, r.code])).toEqual([['aborted', 'CAMVEIL_E_UPLOAD_ABORTED']]);
    // The part requests' connections are closed by the hub, so the store stops receiving.
    await waitFor('the part requests closed', () => proxy.openRequests() === 0, 60_000);
    const bytesAfter = proxy.bytesForwarded();
    expect(bytesAfter).toBeLessThan(o.bytes);
    await remote.cleanupsSettled();
    expect(await openMultipartUploads(env.swift.client, bucket)).toEqual([]);
    await expect(env.swift.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${HUB}/${o.objectId}.age` }))).rejects.toMatchObject({ name: 'NotFound' });
    expect(proxy.seen.filter((s) => s.method === 'POST' && s.path.includes('uploadId='))).toEqual([]);
    expect(proxy.bytesForwarded()).toBe(bytesAfter);
  }, 180_000);

  it('kill -9 mid multipart: the restarted uploader removes the orphan upload at start, then delivers the object whole', async () => {
    const bucket = await env.swift.createBucket();
    const o = await env.fx.object(24 * MiB);
    const options = { dataDir: join(env.fx.dir, 'db-kill'), endpoint: env.swift.endpoint, bucket, prefix: 'p', hub: HUB, credentialsFile: env.fx.credentialsFile, enqueue: [{ objectId: o.objectId, path: o.path, bytes: o.bytes, kind: o.kind }] };
    const first = worker({ ...options, bandwidth: 4 * MiB });
    let orphan: [string, string] | undefined;
    await waitForAsync(
      'a part stored by the first process',
      async () => {
        const open = await openMultipartUploads(env.swift.client, bucket);
        if (open.length === 0) return false;
        const parts = await env.swift.client.send(new ListPartsCommand({ Bucket: bucket, Key: open[0]![0], UploadId: open[0]![1] }));
        orphan = open[0];
        return (parts.Parts ?? []).length >= 1;
      },
      120_000,
    );
    first.kill();
    expect(await first.exited).toBeNull();
    // The killed process could not abort its upload: the parts are still on the server.
    expect(await openMultipartUploads(env.swift.client, bucket)).toEqual([orphan]);
    expect(orphan?.[0]).toBe(`p/${HUB}/${o.objectId}.age`);

    const second = worker({ ...options, enqueue: [] });
    await waitFor('the restarted uploader checked the store', () => second.output().includes('checked '), 60_000);
    expect(second.output()).toMatch(/checked \{"ok":true,"cleaned":1\}/);
    // The orphan is gone as soon as the check is done (a new upload of the object may be open by now).
    expect((await openMultipartUploads(env.swift.client, bucket)).map(([, id]) => id)).not.toContain(orphan?.[1]);
    expect(await second.exited).toBe(0);
    expect(second.output()).toMatch(/done .*"uploaded":1/);
    expect(await openMultipartUploads(env.swift.client, bucket)).toEqual([]);
    const got = await env.swift.client.send(new GetObjectCommand({ Bucket: bucket, Key: `p/${HUB}/${o.objectId}.age` }));
    const body = Buffer.from(await got.Body!.transformToByteArray());
    expect(body.equals(readFileSync(o.path))).toBe(true);
    expect(ageDecrypt(env.fx.identityFile, body).equals(o.plaintext)).toBe(true);
  }, 180_000);

  const worker = (options: object) => spawnUplinkWorker(options, (c) => env.cleanups.push(c));
});
