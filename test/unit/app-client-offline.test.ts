import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppClient } from '../../src/control/app-client.js';
import { startAedes, type TestBroker } from '../harness/mosquitto.js';
import { testHubKeys } from '../harness/hub-keys.js';
import { waitFor } from '../harness/wait.js';

/**
 * `AppClient.send` with the broker gone: MQTT.js keeps a QoS 1 publish queued while it is offline (its promise
 * does not settle), so the reply timer fires first. The call must fail with the timeout, once, and leave no
 * unhandled rejection behind (the reply promise used to reject while nothing awaited it yet).
 */
describe('AppClient with the broker down', () => {
  let broker: TestBroker;
  let client: MqttClient;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

  beforeAll(async () => {
    broker = await startAedes();
    client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 200, connectTimeout: 1000 });
    // Reconnect attempts to a closed port report errors; without a listener MQTT.js would throw them.
    client.on('error', () => undefined);
    process.on('unhandledRejection', onUnhandled);
  });

  afterAll(async () => {
    process.removeListener('unhandledRejection', onUnhandled);
    await client?.endAsync(true).catch(() => undefined);
  });

  it('rejects with the timeout while the publish is queued offline, and no unhandledRejection fires', async () => {
    const keys = await testHubKeys('offline-hub');
    const app = new AppClient({ client, baseTopic: 'camveil', hubId: 'offline-hub', timeoutMs: 300, pinned: keys.pinned });
    // Subscribed while the broker is up; then it goes away.
    await app.start();
    await broker.stop();
    await waitFor('the client to notice the broker is gone', () => !client.connected, 30_000);

    for (let i = 0; i < 3; i++) {
      await expect(app.request('consent/get', {}, { sign: false })).rejects.toMatchObject({ code: 'CAMVEIL_E_INTERNAL', message: expect.stringMatching(/no reply to consent\/get within 300 ms/) as string });
    }
    // Unhandled rejections are reported after the microtask queue drains: give the loop a few turns.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(unhandled).toEqual([]);
  });

  it('rejects with the publish error when the client cannot send at all', async () => {
    const keys = await testHubKeys('ended-hub');
    const second = await startAedes();
    const ended = await mqtt.connectAsync(second.url, { reconnectPeriod: 0 });
    const app = new AppClient({ client: ended, baseTopic: 'camveil', hubId: 'ended-hub', timeoutMs: 60_000, pinned: keys.pinned });
    await app.start();
    await ended.endAsync();
    // An ended client refuses the publish at once: the call fails with that, not 60 s later with the timeout.
    const error = await app.request('consent/get', {}, { sign: false }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).not.toMatch(/no reply/);
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(unhandled).toEqual([]);
    await second.stop();
  });
});
