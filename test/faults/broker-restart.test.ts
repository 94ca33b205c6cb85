import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { expect, it } from 'vitest';
import { AppClient } from '../../src/control/app-client.js';
import { validateConfig } from '../../src/config/load.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { startMosquitto, type TestBroker } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { waitFor } from '../harness/wait.js';

/** The retained messages a fresh subscriber is handed on `topics`. */
async function retained(url: string, topics: string[]): Promise<Map<string, Buffer>> {
  const seen = new Map<string, Buffer>();
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  client.on('message', (topic, payload) => seen.set(topic, payload));
  await client.subscribeAsync(topics);
  await new Promise((r) => setTimeout(r, 500));
  await client.endAsync();
  return seen;
}

/**
 * Debian's mosquitto, without persistence, killed and started again on the same port while the hub runs:
 * the broker comes back empty, and the hub must put its availability and state back at once (not at its
 * next 10 s tick) and answer the app; and a hub whose broker is gone must still stop.
 */
describeWithPeers(['mosquitto'], 'fault: the broker dies and comes back', () => {
  it('the hub reconnects, re-publishes availability and state, answers the app, and stops with the broker down', async () => {
    let broker: TestBroker = await startMosquitto();
    const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-broker-fault-'));
    const hubId = 'fault-hub';
    const config = validateConfig({ hub: { id: hubId, region: 'DE' }, dataDir: path.join(root, 'hub'), mqtt: { url: broker.url } }, 'test', root);
    const gateway = new Gateway({ config, logger: createLogger({ level: 'silent' }) });
    const state = `camveil/${hubId}/state`;
    const availability = `camveil/${hubId}/availability`;
    let stopped = false;
    try {
      await gateway.start();
      const keys = await loadOrCreateHubKeys(config.dataDir);
      const pinned = { hubId, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient };
      let before = new Map<string, Buffer>();
      for (let i = 0; i < 30 && !before.has(state); i++) before = await retained(broker.url, [state, availability]);
      expect(before.get(availability)?.toString()).toBe('online');
      expect(before.has(state)).toBe(true);

      const port = broker.port;
      await broker.stop();
      broker = await startMosquitto({ port });
      // Nothing retained survived the restart; the hub must bring it back by itself (its tick is 10 s).
      let after = new Map<string, Buffer>();
      for (let i = 0; i < 60 && !(after.has(state) && after.get(availability)?.toString() === 'online'); i++) after = await retained(broker.url, [state, availability]);
      expect(after.get(availability)?.toString()).toBe('online');
      expect(after.has(state)).toBe(true);

      // The app is answered through the new broker, signed by the hub.
      const client = await mqtt.connectAsync(broker.url);
      const app = new AppClient({ client, baseTopic: 'camveil', hubId, timeoutMs: 5_000, pinned });
      await app.start();
      let reply = await app.request('status', {}, { sign: false }).catch(() => undefined);
      for (let i = 0; reply === undefined && i < 10; i++) reply = await app.request('status', {}, { sign: false }).catch(() => undefined);
      expect(reply?.status).toBe('ok');
      await app.stop();
      await client.endAsync();

      // Broker gone for good: the stop must not wait for it (the bound is generous; the hub gives it 2 s a step).
      await broker.stop();
      const stop = gateway.stop().then(() => (stopped = true));
      await waitFor('the hub to stop with its broker down', () => stopped, 30_000);
      await stop;
    } finally {
      if (!stopped) await gateway.stop();
      await broker.stop();
      rmSync(root, { recursive: true, force: true });
    }
  }, 180_000);
});
