import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { validateConfig } from '../../src/config/load.js';
import { EventBus, type CamveilEvents } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { DeletionRequests } from '../../src/uplink/deletion-requests.js';
import { UplinkService } from '../../src/uplink/uplink-service.js';
import { describeWithPeers } from '../harness/peers.js';
import { ageDecrypt, swiftUplinkSuite } from '../harness/s3-uplink-setup.js';
import { startS3FaultProxy } from '../harness/s3-fault-proxy.js';
import { waitFor } from '../harness/wait.js';

const HUB = 'hub_5nd4kc2wq7pm3xra';

/**
 * The hub's uplink service configured as a household would: `uplink.endpoints.eu: {type: s3, …}` with a
 * credentials file and no token file. The region picks the zone, the zone the bucket; the store's check at
 * start is told as the `uplink.store` event and kept in the service's stats for the hub's state (a missing bucket names it); objects staged by the service reach
 * the bucket and its deletion requests remove them.
 */
describeWithPeers(['swift', 'age'], 'the uplink service over an s3 endpoint (Swift s3api)', () => {
  const env = swiftUplinkSuite();

  function service(name: string, bucket: string, options: { endpoint?: string; cloud?: () => boolean } = {}) {
    const cloud = options.cloud ?? (() => true);
    const dataDir = join(env.fx.dir, name);
    mkdirSync(dataDir, { recursive: true });
    const config = validateConfig(
      {
        hub: { id: 'home', region: 'DE' },
        dataDir,
        household: { recipients: [env.fx.recipient] },
        uplink: {
          enabled: true,
          endpoints: {
            eu: { type: 's3', endpoint: options.endpoint ?? env.swift.endpoint, region: env.swift.region, bucket, prefix: 'households', forcePathStyle: true, credentialsFile: env.fx.credentialsFile },
            // Never used by a DE hub: its region keeps data in the eu zone.
            us: { type: 's3', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', bucket: 'elsewhere', credentialsFile: env.fx.credentialsFile },
          },
        },
      },
      's3 uplink service test',
      env.fx.dir,
    );
    const db = openDatabase(dataDir);
    const bus = new EventBus();
    const checks: Array<CamveilEvents['uplink.store']> = [];
    const results: Array<CamveilEvents['upload.result']> = [];
    bus.on('uplink.store', (e) => checks.push(e));
    bus.on('upload.result', (e) => results.push(e));
    const uplink = new UplinkService({
      db,
      config: () => config,
      gate: {
        mayUpload: () => (cloud() ? { allowed: true, reason: 'test' } : { allowed: false, reason: 'local-only' }),
        mayQueueUploads: () => (cloud() ? { allowed: true, reason: 'test' } : { allowed: false, reason: 'local-only' }),
      },
      ledger: { records: () => [] },
      audit: new AuditLog(db),
      bus,
      logger: silentLogger(),
      hubPseudonym: () => HUB,
    });
    env.cleanups.push(async () => {
      await uplink.stop();
      db.close();
    });
    return { uplink, db, checks, results, config };
  }

  it('uploads what the service stages to the zone bucket, tells the check, and deletion requests remove it', async () => {
    const bucket = await env.swift.createBucket();
    const s = service('hub-ok', bucket);
    expect(s.config.uplink.tokenFile).toBeUndefined();
    s.uplink.start();
    expect(s.uplink.zone).toBe('eu');
    await waitFor('the store checked', () => s.checks.length > 0, 60_000);
    expect(s.checks).toEqual([{ ok: true, transport: 's3', cleaned: 0 }]);
    expect(s.uplink.stats()?.store).toEqual({ ok: true });

    const o = await env.fx.object(12 * 1024 * 1024 + 7, 'clip');
    await s.uplink.stage({ objectId: o.objectId, path: o.path, bytes: o.bytes, kind: o.kind });
    await waitFor('uploaded', () => s.results.some((r) => r.objectId === o.objectId && r.result === 'uploaded'), 120_000);
    const got = await env.swift.client.send(new GetObjectCommand({ Bucket: bucket, Key: `households/${HUB}/${o.objectId}.age` }));
    const body = Buffer.from(await got.Body!.transformToByteArray());
    expect(body.equals(readFileSync(o.path))).toBe(true);
    expect(ageDecrypt(env.fx.identityFile, body).equals(o.plaintext)).toBe(true);

    new DeletionRequests(s.db).add([o.objectId]);
    s.uplink.flushDeletions();
    await waitFor('the deletion confirmed', () => new DeletionRequests(s.db).pending().length === 0, 60_000);
    await expect(env.swift.client.send(new GetObjectCommand({ Bucket: bucket, Key: `households/${HUB}/${o.objectId}.age` }))).rejects.toMatchObject({ name: 'NoSuchKey' });
  }, 180_000);

  it('a missing bucket is told at start as uplink.store naming the bucket; the staged object waits, queued', async () => {
    const bucket = `camveil-absent-${Date.now().toString(36)}`;
    const s = service('hub-missing', bucket);
    s.uplink.start();
    await waitFor('the store check failed', () => s.checks.length > 0, 60_000);
    expect(s.checks[0]).toMatchObject({ ok: false, transport: 's3', code: 'CAMVEIL_E_UPLOAD_REJECTED' });
    expect(s.checks[0]?.message).toContain(`"${bucket}"`);
    // The hub's (sealed) state says so too, with the same code and message.
    expect(s.uplink.stats()?.store).toEqual({ ok: false, code: 'CAMVEIL_E_UPLOAD_REJECTED', message: s.checks[0]?.message });
    const o = await env.fx.object(1000);
    await s.uplink.stage({ objectId: o.objectId, path: o.path, bytes: o.bytes, kind: o.kind });
    expect(s.uplink.stats()?.outbox).toMatchObject({ queued: 1, uploading: 0, uploaded: 0, failed: 0 });
    expect(s.results).toEqual([]);
  }, 120_000);

  it('started in local-only mode, the service asks the bucket nothing (no check, no cleanup) until a grant resumes it', async () => {
    const bucket = await env.swift.createBucket();
    const proxy = await startS3FaultProxy(env.swift.port);
    env.cleanups.push(() => proxy.close());
    let cloud = false;
    const s = service('hub-local-only', bucket, { endpoint: proxy.endpoint, cloud: () => cloud });
    s.uplink.start();
    const o = await env.fx.object(1000);
    await s.uplink.stage({ objectId: o.objectId, path: o.path, bytes: o.bytes, kind: o.kind });
    // Give a check every chance to run: another store's full check and upload finish meanwhile.
    const other = service('hub-local-only-witness', bucket);
    other.uplink.start();
    await waitFor('the witness store checked', () => other.checks.length > 0, 60_000);
    expect(proxy.seen).toEqual([]);
    expect(s.checks).toEqual([]);

    cloud = true;
    s.uplink.resume();
    await waitFor('the store checked after the grant', () => s.checks.length > 0, 60_000);
    expect(s.checks[0]).toMatchObject({ ok: true, transport: 's3' });
    expect(proxy.seen.length).toBeGreaterThan(0);
  }, 180_000);
});
