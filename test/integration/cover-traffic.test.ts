import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppClient } from '../../src/control/app-client.js';
import { startEmbeddedBroker } from '../../src/control/embedded-broker.js';
import { PADDING_BUCKETS, padJson, paddedSize } from '../../src/control/padding.js';
import { validateConfig } from '../../src/config/load.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { waitFor } from '../harness/wait.js';

describe('padding of what the hub seals for the app', () => {
  it('pads JSON with spaces to the smallest bucket it fits, and past the largest to whole multiples of it', () => {
    expect([1, 1024, 1025, 4096, 4097, 65536, 65537].map(paddedSize)).toEqual([1024, 1024, 4096, 4096, 16384, 65536, 131072]);
    const small = padJson({ type: 'motion', camera: 'cam_x', at: 1 });
    const face = padJson({ type: 'known-face', camera: 'cam_x', person: 'person_abcdefghijklmnop', sighting: 'sight_x', event: 'e', at: 1 });
    expect([small.length, face.length]).toEqual([PADDING_BUCKETS[0], PADDING_BUCKETS[0]]);
    expect(JSON.parse(face.toString())).toMatchObject({ type: 'known-face' });
  });
});

/**
 * Opt-in cover traffic on a real hub and broker: dummy events go out on the event topic, sealed and signed
 * like real ones and of the same size on the wire, and the app drops them after decrypting while real
 * events (here a security event for an unsigned withdrawal) still reach it.
 */
describe('mqtt.coverTraffic', () => {
  let root: string;
  let broker: Awaited<ReturnType<typeof startEmbeddedBroker>>;
  let gateway: Gateway;
  const clients: mqtt.MqttClient[] = [];

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-cover-'));
    broker = await startEmbeddedBroker();
  });
  afterAll(async () => {
    for (const c of clients) await c.endAsync();
    await gateway?.stop();
    await broker?.close();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('sends dummy events the broker cannot tell from real ones, and the app drops them', async () => {
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const hubId = 'cover-hub';
    const config = validateConfig(
      { hub: { id: hubId, region: 'DE' }, dataDir: path.join(root, 'hub'), household: { recipients: [recipient] }, mqtt: { url: broker.url, coverTraffic: { enabled: true, perMinute: 60 } } },
      'test',
      root,
    );
    gateway = new Gateway({ config, logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    const keys = await loadOrCreateHubKeys(config.dataDir);

    const wire: number[] = [];
    const watcher = await mqtt.connectAsync(broker.url);
    clients.push(watcher);
    watcher.on('message', (_topic, payload) => wire.push(payload.length));
    await watcher.subscribeAsync(`camveil/${hubId}/event`);

    const appMqtt = await mqtt.connectAsync(broker.url);
    clients.push(appMqtt);
    const app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId, timeoutMs: 10_000, identity, pinned: { hubId, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
    await app.start();
    const seen: Array<{ type?: string }> = [];
    const errors: unknown[] = [];
    await app.followEvents(identity, (e) => seen.push(e as { type?: string }), (e) => errors.push(e));

    // About one a second: wait for a few dummies, then cause a real event (an unsigned withdrawal).
    await waitFor('three events on the wire', () => wire.length >= 3, 60_000);
    expect(seen).toEqual([]);
    await gateway.consent.acceptPolicy('2021-10-31', localRequest('test'));
    const before = wire.length;
    let r = await app.request('consent/set', { action: 'withdraw', consent: 'cloudUpload' }, { sign: false }).catch(() => undefined);
    for (let i = 0; r === undefined && i < 10; i++) r = await app.request('consent/set', { action: 'withdraw', consent: 'cloudUpload' }, { sign: false }).catch(() => undefined);
    expect(r?.status).toBe('ok');
    await waitFor('the security event at the app', () => seen.some((e) => e.type === 'security'), 60_000);
    await waitFor('another dummy after it', () => wire.length >= before + 2, 60_000);

    // The app saw only the real event; every message on the wire had one size.
    expect(seen.map((e) => e.type)).toEqual(['security']);
    expect(errors).toEqual([]);
    expect(new Set(wire).size).toBe(1);
  }, 180_000);
});
