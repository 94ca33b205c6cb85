import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HomeAssistantBridge, type HomeAssistantCamera } from '../../src/control/ha-discovery.js';
import { secretProblems } from '../../src/control/state-guard.js';
import { connectOptions } from '../../src/control/topics.js';
import { silentLogger } from '../../src/log.js';
import { startBroker, type BrokerKind, type TestBroker } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { waitFor } from '../harness/wait.js';

const HUB = 'obj-hub';
const CONFIG = (camera: string, label: string) => `homeassistant/binary_sensor/camveil_${HUB}/${camera}_${label}/config`;
const STATE = (camera: string, label: string) => `camveil/${HUB}/camera/${camera}/object/${label}`;

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

/** What a fresh subscriber finds retained under `filter` (the last payload per topic; empty ones are no message). */
async function retained(url: string, filter: string, expected: number): Promise<Map<string, string>> {
  const { client, seen } = await watcher(url, [filter]);
  await waitFor(`${expected} retained messages under ${filter}`, () => seen.length >= expected, 5000);
  // The broker sends every retained message on subscribe, before anything newer: a short settle for stragglers.
  await new Promise((r) => setTimeout(r, 200));
  await client.endAsync();
  return new Map(seen.map((s) => [s.topic, s.payload]));
}

function objectSensorsAgainst(kind: BrokerKind): void {
  let broker: TestBroker;
  let hubMqtt: MqttClient;
  let bridge: HomeAssistantBridge;
  // Mutable: the household turns objects off, narrows the labels, removes a camera.
  let cameras: HomeAssistantCamera[] = [
    { id: 'porch', name: 'Porch', objectLabels: ['person', 'animal', 'vehicle'] },
    { id: 'drive', objectLabels: ['vehicle'] },
    { id: 'garden' },
  ];

  beforeAll(async () => {
    broker = await startBroker(kind);
    hubMqtt = await mqtt.connectAsync(broker.url, connectOptions('camveil', HUB));
    bridge = new HomeAssistantBridge({ baseTopic: 'camveil', hubId: HUB, prefix: 'homeassistant', cameras: () => cameras, logger: silentLogger() });
    await bridge.start(hubMqtt);
  });

  afterAll(async () => {
    await bridge?.stop();
    await hubMqtt?.endAsync();
    await broker?.stop();
  });

  it('announces an occupancy binary sensor per tracked label per camera, read-only, retained; none where objects are off', async () => {
    const configs = await retained(broker.url, `homeassistant/binary_sensor/camveil_${HUB}/+/config`, 7);
    const objectConfigs = [...configs.keys()].filter((t) => /_(person|animal|vehicle)\/config$/.test(t)).sort();
    expect(objectConfigs).toEqual([CONFIG('drive', 'vehicle'), CONFIG('porch', 'animal'), CONFIG('porch', 'person'), CONFIG('porch', 'vehicle')].sort());
    const person = JSON.parse(configs.get(CONFIG('porch', 'person'))!) as Record<string, unknown>;
    expect(person).toMatchObject({
      name: 'Person',
      unique_id: `camveil_${HUB}_porch_person`,
      device_class: 'occupancy',
      state_topic: STATE('porch', 'person'),
      payload_on: 'ON',
      payload_off: 'OFF',
      availability_topic: `camveil/${HUB}/availability`,
      device: { identifiers: [`camveil_${HUB}_porch`], name: 'Porch', via_device: `camveil_${HUB}` },
    });
    expect(Object.keys(person).filter((k) => k.startsWith('command'))).toEqual([]);
    const ids = objectConfigs.map((t) => (JSON.parse(configs.get(t)!) as { unique_id: string }).unique_id);
    expect(new Set(ids).size).toBe(4);
  });

  it('starts every object sensor OFF, retained', async () => {
    const states = await retained(broker.url, `camveil/${HUB}/camera/+/object/+`, 4);
    expect([...states.keys()].sort()).toEqual([STATE('drive', 'vehicle'), STATE('porch', 'animal'), STATE('porch', 'person'), STATE('porch', 'vehicle')].sort());
    expect([...states.values()].every((v) => v === 'OFF')).toBe(true);
  });

  it('is ON while a confirmed object of the label is in view, OFF when the last one ended', async () => {
    const { client, seen } = await watcher(broker.url, [STATE('porch', 'person'), STATE('porch', 'vehicle'), STATE('garden', 'person')]);
    await waitFor('the retained states', () => seen.length >= 2, 5000);
    const person = () => seen.filter((s) => s.topic === STATE('porch', 'person')).map((s) => s.payload);
    expect(person()).toEqual(['OFF']);
    await bridge.objectConfirmed('porch', 'person', 'trk_a');
    await bridge.objectConfirmed('porch', 'person', 'trk_b');
    await bridge.objectEnded('porch', 'person', 'trk_a');
    // A camera that tracks no objects, and a track never confirmed: nothing.
    await bridge.objectConfirmed('garden', 'person', 'trk_c');
    await bridge.objectEnded('porch', 'person', 'trk_unknown');
    // Published after the above on the same connection: once it arrives, they would have.
    await bridge.objectConfirmed('porch', 'vehicle', 'trk_d');
    await waitFor('vehicle ON', () => seen.some((s) => s.topic === STATE('porch', 'vehicle') && s.payload === 'ON'), 5000);
    // Still someone there: one ON, no OFF yet (trk_b is in view).
    expect(person()).toEqual(['OFF', 'ON']);
    await bridge.objectEnded('porch', 'person', 'trk_b');
    await waitFor('person OFF after the last track ended', () => person().length === 3, 5000);
    expect(person()).toEqual(['OFF', 'ON', 'OFF']);
    expect(seen.some((s) => s.topic.includes('garden'))).toBe(false);
    await client.endAsync();
    const states = await retained(broker.url, `camveil/${HUB}/camera/porch/object/+`, 3);
    expect(states.get(STATE('porch', 'person'))).toBe('OFF');
    expect(states.get(STATE('porch', 'vehicle'))).toBe('ON');
  });

  it('turns a camera that stopped seeing OFF', async () => {
    await bridge.objectConfirmed('drive', 'vehicle', 'trk_e');
    expect((await retained(broker.url, STATE('drive', 'vehicle'), 1)).get(STATE('drive', 'vehicle'))).toBe('ON');
    await bridge.cameraBlind('drive');
    expect((await retained(broker.url, STATE('drive', 'vehicle'), 1)).get(STATE('drive', 'vehicle'))).toBe('OFF');
    // Its track, ended later by the analyser, changes nothing.
    await bridge.objectEnded('drive', 'vehicle', 'trk_e');
    expect((await retained(broker.url, STATE('drive', 'vehicle'), 1)).get(STATE('drive', 'vehicle'))).toBe('OFF');
  });

  it('withdraws the sensors of labels no longer tracked, of objects turned off and of a camera removed', async () => {
    cameras = [{ id: 'porch', name: 'Porch', objectLabels: ['person'] }, { id: 'drive' }, { id: 'garden' }];
    await bridge.announce();
    let configs = await retained(broker.url, `homeassistant/binary_sensor/camveil_${HUB}/+/config`, 4);
    expect([...configs.keys()].filter((t) => /_(person|animal|vehicle)\/config$/.test(t))).toEqual([CONFIG('porch', 'person')]);
    // A label confirmed after it stopped being tracked does not turn anything on.
    await bridge.objectConfirmed('porch', 'vehicle', 'trk_f');
    cameras = [{ id: 'drive' }, { id: 'garden' }];
    await bridge.announce();
    configs = await retained(broker.url, `homeassistant/binary_sensor/camveil_${HUB}/+/config`, 2);
    expect([...configs.keys()].filter((t) => t.includes('porch'))).toEqual([]);
    expect([...configs.keys()].sort()).toEqual([`homeassistant/binary_sensor/camveil_${HUB}/drive_motion/config`, `homeassistant/binary_sensor/camveil_${HUB}/garden_motion/config`]);
    // Their retained states went with them (porch's vehicle was left ON above): only a marker of ours is left.
    const probe = await mqtt.connectAsync(broker.url);
    await probe.publishAsync(`camveil/${HUB}/camera/porch/marker`, 'x', { qos: 1, retain: true });
    const left = await retained(broker.url, `camveil/${HUB}/camera/porch/#`, 1);
    await probe.publishAsync(`camveil/${HUB}/camera/porch/marker`, '', { qos: 1, retain: true });
    await probe.endAsync();
    expect([...left.keys()]).toEqual([`camveil/${HUB}/camera/porch/marker`]);
  });

  it('publishes no identity: an object sensor says "a person", never who', async () => {
    cameras = [{ id: 'porch', name: 'Porch', objectLabels: ['person', 'animal', 'vehicle'] }];
    const { client, seen } = await watcher(broker.url, ['#']);
    await bridge.announce();
    await bridge.objectConfirmed('porch', 'person', 'trk_g');
    await waitFor('person ON', () => seen.some((s) => s.topic === STATE('porch', 'person') && s.payload === 'ON'), 5000);
    await client.endAsync();
    for (const s of seen) {
      expect(s.topic).not.toMatch(/face|subject|identit|person_|trk_/i);
      expect(s.payload).not.toMatch(/face|subject|identit|person_|trk_|AGE-SECRET|age1|rtsp:|password/i);
      if (s.payload.startsWith('{')) expect(secretProblems(JSON.parse(s.payload))).toEqual([]);
    }
  });
}

describe('Home Assistant object sensors over aedes', () => objectSensorsAgainst('aedes'));
describeWithPeers(['mosquitto'], 'Home Assistant object sensors over mosquitto', () => objectSensorsAgainst('mosquitto'));
