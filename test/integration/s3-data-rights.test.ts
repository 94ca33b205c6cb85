import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runConsent } from '../../src/commands/consent.js';
import { runDataExport } from '../../src/commands/data.js';
import { openHubContext } from '../../src/commands/hub-context.js';
import type { CommandIO } from '../../src/commands/io.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { S3ObjectStore } from '../../src/uplink/s3-object-store.js';
import { describeWithPeers } from '../harness/peers.js';
import { startS3FaultProxy, type S3FaultProxy } from '../harness/s3-fault-proxy.js';
import { s3UplinkFixture, type S3UplinkFixture } from '../harness/s3-uplink-setup.js';
import { startSwift, type SwiftS3 } from '../harness/swift.js';

/**
 * The household's export says what the S3 bucket holds for this hub (ids and sizes, listed under the hub's
 * prefix) while the hub is in cloud mode; in local-only mode the export asks the bucket nothing at all (a
 * proxy in front of Swift counts the bytes).
 */
describeWithPeers(['swift', 'age'], 'data export with an s3 endpoint: the bucket listed in cloud mode, not asked in local-only', () => {
  let swift: SwiftS3;
  let proxy: S3FaultProxy;
  let fx: S3UplinkFixture;
  let root: string;
  let configFile: string;
  let identity: string;
  let bucket: string;

  const io = (): CommandIO & { out: string[] } => {
    const out: string[] = [];
    return { out, stdout: (t) => out.push(t), stderr: () => undefined };
  };
  const exportLines = async (): Promise<Array<{ section: string; objectId?: string; bytes?: number; unavailable?: string }>> => {
    const out = path.join(root, `export-${Date.now()}.age`);
    expect(await runDataExport({ config: configFile, out }, io())).toBe(0);
    const text = (await decryptToBuffer(identity, readFileSync(out))).toString();
    return text.trim().split('\n').map((l) => JSON.parse(l) as { section: string });
  };
  const consent = async (kind: 'grant' | 'withdraw', name: string): Promise<void> => {
    expect(await runConsent({ kind, consent: name }, { config: configFile }, io())).toBe(0);
  };

  beforeAll(async () => {
    swift = await startSwift();
    proxy = await startS3FaultProxy(swift.port);
    fx = s3UplinkFixture();
    bucket = await swift.createBucket();
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-s3-rights-'));
    identity = readFileSync(fx.identityFile, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
    const raw = {
      hub: { id: 's3-rights-hub', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      cameras: [{ id: 'porch', source: 'rtsp://127.0.0.1:9/none' }],
      household: { recipients: [fx.recipient] },
      uplink: {
        enabled: true,
        endpoints: { eu: { type: 's3', endpoint: proxy.endpoint, region: swift.region, bucket, prefix: 'homes', forcePathStyle: true, credentialsFile: fx.credentialsFile } },
      },
    };
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    expect(await runConsent({ kind: 'accept-policy', version: '2021-10-31' }, { config: configFile }, io())).toBe(0);
    await consent('grant', 'cloudUpload');
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await swift?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
    if (fx !== undefined) rmSync(fx.dir, { recursive: true, force: true });
  });

  it('lists the objects under the hub prefix in cloud mode, and asks nothing once local-only', async () => {
    const hub = await openHubContext(configFile);
    const pseudonym = hub.pseudonymise('hub', hub.config.hub.id);
    hub.close();
    const store = new S3ObjectStore({ endpoint: swift.endpoint, region: swift.region, bucket, prefix: 'homes', forcePathStyle: true, credentialsFile: fx.credentialsFile, hubPseudonym: pseudonym });
    const a = await fx.object(1000);
    const b = await fx.object(5000);
    for (const o of [a, b]) {
      const outcome = await store.put({ objectId: o.objectId, bytes: o.bytes }, readFileSync(o.path), new AbortController().signal);
      expect(outcome).toEqual({ kind: 'uploaded' });
    }
    // Another hub's object in the same bucket is not this household's.
    const other = new S3ObjectStore({ endpoint: swift.endpoint, region: swift.region, bucket, prefix: 'homes', forcePathStyle: true, credentialsFile: fx.credentialsFile, hubPseudonym: 'another-hub' });
    const c = await fx.object(10);
    expect(await other.put({ objectId: c.objectId, bytes: c.bytes }, readFileSync(c.path), new AbortController().signal)).toEqual({ kind: 'uploaded' });
    store.close();
    other.close();

    const cloud = (await exportLines()).filter((l) => l.section === 'cloud');
    expect(cloud.map((l) => [l.objectId, l.bytes]).sort()).toEqual([[a.objectId, a.bytes], [b.objectId, b.bytes]].sort());

    await consent('withdraw', 'cloudUpload');
    const before = proxy.bytesForwarded();
    const lines = await exportLines();
    expect(lines.filter((l) => l.section === 'cloud')).toEqual([]);
    expect(lines.some((l) => l.section === 'export')).toBe(true);
    expect(proxy.bytesForwarded()).toBe(before);
  }, 120_000);
});
