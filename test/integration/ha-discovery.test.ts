import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { discoveryMessages, HomeAssistantBridge } from '../../src/control/ha-discovery.js';
import { secretProblems } from '../../src/control/state-guard.js';
import { connectOptions } from '../../src/control/topics.js';
import { silentLogger } from '../../src/log.js';
import { startBroker, type BrokerKind, type TestBroker } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { waitFor } from '../harness/wait.js';

const HUB = 'ha-hub';
const AT = Date.UTC(2026, 10, 23, 12, 0, 0);
const CAMERAS = [{ id: 'porch', name: 'Porch' }, { id: 'garden' }];

interface Seen {
  topic: string;
  payload: string;
  retain: boolean;
}

/** A client that records everything under `filters`, as Home Assistant (or anyone on the broker) would see it. */
async function watcher(url: string, filters: string[]): Promise<{ client: MqttClient; seen: Seen[] }> {
  const client = await mqtt.connectAsync(url);
  const seen: Seen[] = [];
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString('utf8'), retain: packet.retain }));
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, seen };
}

const configsOf = (seen: Seen[]) => seen.filter((s) => s.topic.startsWith('homeassistant/') && s.topic.endsWith('/config'));

function discoveryAgainst(kind: BrokerKind): void {
  let broker: TestBroker;
  let hubMqtt: MqttClient;
  let bridge: HomeAssistantBridge;
  const now = () => AT;

  beforeAll(async () => {
    broker = await startBroker(kind);
    hubMqtt = await mqtt.connectAsync(broker.url, connectOptions('camveil', HUB));
    bridge = new HomeAssistantBridge({ baseTopic: 'camveil', hubId: HUB, prefix: 'homeassistant', cameras: () => CAMERAS, logger: silentLogger(), now });
    await bridge.start(hubMqtt);
  });

  afterAll(async () => {
    await bridge?.stop();
    await hubMqtt?.endAsync();
    await broker?.stop();
  });

  it('publishes retained, well-formed discovery configs: motion and last event per camera, the upload mode per hub', async () => {
    const { client, seen } = await watcher(broker.url, ['homeassistant/#']);
    await waitFor('5 retained discovery configs', () => configsOf(seen).length >= 5, 5000);
    await client.endAsync();
    const configs = configsOf(seen);
    expect(configs.every((c) => c.retain)).toBe(true);
    expect(configs.map((c) => c.topic).sort()).toEqual(
      [
        'homeassistant/binary_sensor/camveil_ha-hub/garden_motion/config',
        'homeassistant/binary_sensor/camveil_ha-hub/porch_motion/config',
        'homeassistant/sensor/camveil_ha-hub/cloud_uploads/config',
        'homeassistant/sensor/camveil_ha-hub/garden_last_event/config',
        'homeassistant/sensor/camveil_ha-hub/porch_last_event/config',
      ].sort(),
    );
    const byTopic = new Map(configs.map((c) => [c.topic, JSON.parse(c.payload) as Record<string, unknown>]));
    for (const [topic, config] of byTopic) {
      expect(config, topic).toMatchObject({
        unique_id: expect.stringMatching(/^camveil_ha-hub_/) as string,
        availability_topic: 'camveil/ha-hub/availability',
        payload_available: 'online',
        payload_not_available: 'offline',
        device: { identifiers: [expect.stringMatching(/^camveil_ha-hub/) as string] },
      });
      // Read-only: nothing Home Assistant (or the broker) publishes can turn a data flow on.
      expect(Object.keys(config).filter((k) => k.startsWith('command'))).toEqual([]);
    }
    expect(new Set([...byTopic.values()].map((c) => c.unique_id)).size).toBe(5);
    expect(byTopic.get('homeassistant/binary_sensor/camveil_ha-hub/porch_motion/config')).toMatchObject({
      device_class: 'motion',
      state_topic: 'camveil/ha-hub/camera/porch/motion',
      payload_on: 'ON',
      payload_off: 'OFF',
      device: { name: 'Porch', via_device: 'camveil_ha-hub' },
    });
    expect(byTopic.get('homeassistant/sensor/camveil_ha-hub/garden_last_event/config')).toMatchObject({
      device_class: 'timestamp',
      state_topic: 'camveil/ha-hub/camera/garden/last_event',
      device: { name: 'garden' },
    });
    expect(byTopic.get('homeassistant/sensor/camveil_ha-hub/cloud_uploads/config')).toMatchObject({
      state_topic: 'camveil/ha-hub/ha/cloud_uploads',
      device: { identifiers: ['camveil_ha-hub'] },
    });
    // Not the hub's signed, sealed state (MQTT API v2): the mode goes on a topic of the bridge's own.
    expect(byTopic.get('homeassistant/sensor/camveil_ha-hub/cloud_uploads/config')).not.toHaveProperty('value_template');
  });

  it('publishes the upload mode in clear on its own topic, retained', async () => {
    await bridge.mode('local-only');
    const { client, seen } = await watcher(broker.url, ['camveil/ha-hub/ha/cloud_uploads']);
    await waitFor('the retained mode', () => seen.length >= 1, 5000);
    await client.endAsync();
    expect(seen[0]).toMatchObject({ payload: 'local-only', retain: true });
  });

  it('unique ids are stable: derived from the hub and camera ids only', () => {
    const again = discoveryMessages({ baseTopic: 'camveil', hubId: HUB, prefix: 'homeassistant', cameras: [{ id: 'garden', name: 'Renamed' }] });
    expect(again.map((m) => m.config.unique_id)).toEqual(['camveil_ha-hub_cloud_uploads', 'camveil_ha-hub_garden_motion', 'camveil_ha-hub_garden_last_event']);
  });

  it('re-publishes every config when Home Assistant sends its birth message', async () => {
    const { client, seen } = await watcher(broker.url, ['homeassistant/+/+/+/config']);
    await waitFor('the retained configs', () => configsOf(seen).length >= 5, 5000);
    await client.publishAsync('homeassistant/status', 'offline', { qos: 1 });
    await client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor('the configs again after the birth message', () => configsOf(seen).length >= 10, 5000);
    await client.endAsync();
    expect(configsOf(seen)).toHaveLength(10);
  });

  it('publishes motion ON/OFF and the last event time, retained; ignores unknown cameras', async () => {
    const { client, seen } = await watcher(broker.url, ['camveil/ha-hub/camera/#']);
    await waitFor('the initial OFF states', () => seen.filter((s) => s.payload === 'OFF').length >= 2, 5000);
    await bridge.motion('porch', true);
    await bridge.motion('nobody', true);
    await waitFor('motion ON', () => seen.some((s) => s.topic === 'camveil/ha-hub/camera/porch/motion' && s.payload === 'ON'), 5000);
    await waitFor('the last event time', () => seen.some((s) => s.topic === 'camveil/ha-hub/camera/porch/last_event'), 5000);
    await bridge.motion('porch', false);
    await waitFor('motion OFF', () => seen.at(-1)?.payload === 'OFF', 5000);
    await client.endAsync();
    expect(seen.find((s) => s.topic === 'camveil/ha-hub/camera/porch/last_event')?.payload).toBe('2026-11-23T12:00:00.000Z');
    expect(seen.some((s) => s.topic.includes('nobody'))).toBe(false);

    const fresh = await watcher(broker.url, ['camveil/ha-hub/camera/porch/#']);
    await waitFor('retained porch state', () => fresh.seen.length >= 2, 5000);
    await fresh.client.endAsync();
    expect(fresh.seen.every((s) => s.retain)).toBe(true);
    expect(fresh.seen.find((s) => s.topic.endsWith('/motion'))?.payload).toBe('OFF');
  });

  it('publishes nothing with personal data: no face identities, no keys, no secrets, no sources', async () => {
    const { client, seen } = await watcher(broker.url, ['#']);
    await waitFor('the retained messages', () => configsOf(seen).length >= 5, 5000);
    await bridge.announce();
    await bridge.motion('garden', true);
    await waitFor('garden motion', () => seen.some((s) => s.topic.includes('garden/motion') && s.payload === 'ON'), 5000);
    await client.endAsync();
    for (const s of seen) {
      expect(s.topic).not.toMatch(/face|person|subject|identit/i);
      expect(s.payload).not.toMatch(/face|person|subject|identit|AGE-SECRET|age1|rtsp:|password/i);
      if (s.payload.startsWith('{')) expect(secretProblems(JSON.parse(s.payload))).toEqual([]);
    }
  });

  it('stops listening for the birth message after stop()', async () => {
    const other = new HomeAssistantBridge({ baseTopic: 'camveil', hubId: 'other-hub', prefix: 'homeassistant', cameras: () => [], logger: silentLogger(), now });
    const otherMqtt = await mqtt.connectAsync(broker.url);
    await other.start(otherMqtt);
    await other.stop();
    const { client, seen } = await watcher(broker.url, ['homeassistant/sensor/camveil_other-hub/#']);
    await waitFor('its retained config', () => seen.length >= 1, 5000);
    await client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    await client.endAsync();
    await otherMqtt.endAsync();
    expect(seen).toHaveLength(1);
  });
}

describe('Home Assistant discovery over aedes', () => discoveryAgainst('aedes'));
describeWithPeers(['mosquitto'], 'Home Assistant discovery over mosquitto', () => discoveryAgainst('mosquitto'));

describe('homeAssistant config', () => {
  const base = { hub: { id: 'h1', region: 'DE' } };

  it('is off by default, with the homeassistant prefix', () => {
    expect(validateConfig(base, 'c.json', '/').homeAssistant).toEqual({ discovery: false, prefix: 'homeassistant' });
  });

  it('needs mqtt, a valid prefix and no unknown keys', () => {
    expect(() => validateConfig({ ...base, homeAssistant: { discovery: true } }, 'c.json', '/')).toThrow(/homeAssistant\.discovery: needs mqtt/);
    expect(() => validateConfig({ ...base, mqtt: { url: 'mqtt://127.0.0.1:1883' }, homeAssistant: { discovery: true, prefix: 'ha/#' } }, 'c.json', '/')).toThrow(/homeAssistant\.prefix/);
    expect(() => validateConfig({ ...base, homeAssistant: { commands: true } }, 'c.json', '/')).toThrow(/homeAssistant/);
    expect(validateConfig({ ...base, mqtt: { url: 'mqtt://127.0.0.1:1883' }, homeAssistant: { discovery: true } }, 'c.json', '/').homeAssistant.discovery).toBe(true);
  });
});
