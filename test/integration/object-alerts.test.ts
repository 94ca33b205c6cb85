import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import type { ObjectLabel } from '../../src/policy/vocabulary.js';
import { freePort } from '../harness/mosquitto.js';
import { waitFor } from '../harness/wait.js';

const HUB = 'obj-alert-hub';
const BOX = { x: 10, y: 20, width: 40, height: 90 };

interface Alert {
  type: string;
  camera?: string;
  label?: string;
  event?: string;
  score?: number;
  at?: number;
}

/**
 * What the phones and Home Assistant hear about objects, from the running gateway (embedded aedes broker):
 * the bus events the objects analyser emits (`object.confirmed`, `object.ended`) become sealed `object`
 * alerts once per object, narrowed by `alerts.onlyFor`; the sealed state counts them; Home Assistant's
 * object sensors follow them. The cameras point at a port nobody listens on, with a 10-minute reconnect
 * backoff, so after their first failure no camera event interferes.
 */
describe('gateway: object alerts, alerts.onlyFor, detection counts and Home Assistant object sensors', () => {
  let root: string;
  let gateway: Gateway;
  let identity: string;
  let url: string;
  let appMqtt: MqttClient;
  let app: AppClient;
  let ha: MqttClient;
  const haSeen: Array<{ topic: string; payload: string }> = [];
  const alerts: Alert[] = [];
  let unfollow: (() => Promise<void>) | undefined;
  const cam = (id: string) => gateway.pseudonymise('cam', id);
  const confirmed = (cameraId: string, trackId: string, label: ObjectLabel, extra: Partial<CamveilEvents['object.confirmed']> = {}) =>
    gateway.bus.emit('object.confirmed', { cameraId, trackId, label, cocoClass: label === 'vehicle' ? 'car' : label === 'animal' ? 'dog' : 'person', score: 0.8, box: BOX, at: Date.now(), ...extra });
  const alertsOf = (type: string, cameraId: string) => alerts.filter((a) => a.type === type && a.camera === cam(cameraId));

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-objalert-'));
    identity = await generateX25519Identity();
    url = `mqtt://127.0.0.1:${await freePort()}`;
    const raw = {
      hub: { id: HUB, region: 'DE' },
      dataDir: path.join(root, 'hub'),
      household: { recipients: [await identityToRecipient(identity)] },
      mqtt: { url, embeddedBroker: true },
      homeAssistant: { discovery: true },
      cameras: [
        // Alerts only for people here; every label tracked (the default).
        { id: 'porch', source: 'rtsp://127.0.0.1:1/porch', objects: { enabled: true }, alerts: { onlyFor: ['person'] } },
        // COCO class names stand for their group: this camera reports vehicles only.
        { id: 'drive', source: 'rtsp://127.0.0.1:1/drive', objects: { enabled: true, track: ['car', 'truck'] } },
        // Objects turned off (they are on by default): no object sensors.
        { id: 'shed', source: 'rtsp://127.0.0.1:1/shed', objects: { enabled: false } },
      ],
    };
    const configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    gateway = new Gateway({
      config: validateConfig(raw, configFile, root),
      logger: createLogger({ level: 'silent' }),
      backoff: { initialMs: 600_000, maxMs: 600_000 },
    });
    await gateway.start();
    await waitFor('the control plane to be up', () => gateway.state().mqtt !== undefined, 10_000);
    // Each camera fails once (nothing listens on port 1), then waits ten minutes.
    await waitFor('every camera to report its failure', () => gateway.state().cameras.every((c) => c.error !== undefined), 20_000);
    ha = await mqtt.connectAsync(url);
    ha.on('message', (topic, payload) => haSeen.push({ topic, payload: payload.toString('utf8') }));
    await ha.subscribeAsync(['homeassistant/#', `camveil/${HUB}/camera/#`], { qos: 1 });
    appMqtt = await mqtt.connectAsync(url);
    const keys = await loadOrCreateHubKeys(path.join(root, 'hub'));
    const pinned = { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient };
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: HUB, timeoutMs: 10_000, pinned, identity });
    await app.start();
    unfollow = await app.followEvents(identity, (e) => alerts.push(e as Alert));
  });

  afterAll(async () => {
    await unfollow?.();
    await app?.stop();
    await appMqtt?.endAsync();
    await ha?.endAsync();
    await gateway?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('a confirmed object is one sealed `object` alert {type, label, camera, event, score, at}, never twice for a track', async () => {
    const at = Date.now();
    confirmed('drive', 'trk_1', 'vehicle', { score: 0.83, at, eventId: 'evt-1' });
    // The same track told again (a duplicate on the bus): no second alert.
    confirmed('drive', 'trk_1', 'vehicle', { score: 0.9, at: at + 500, eventId: 'evt-1' });
    // Another object, without an open event.
    confirmed('drive', 'trk_2', 'vehicle', { score: 0.61, at: at + 1000 });
    await waitFor('two object alerts', () => alertsOf('object', 'drive').length >= 2, 10_000);
    // Anything published before this motion alert has arrived by the time it has.
    gateway.bus.emit('motion.start', { cameraId: 'drive', at: at + 2000, score: 0.5 });
    await waitFor('the motion alert after them', () => alertsOf('motion', 'drive').length >= 1, 10_000);
    const objects = alertsOf('object', 'drive').sort((a, b) => a.at! - b.at!);
    expect(objects).toEqual([
      { type: 'object', label: 'vehicle', camera: cam('drive'), event: 'evt-1', score: 0.83, at },
      { type: 'object', label: 'vehicle', camera: cam('drive'), score: 0.61, at: at + 1000 },
    ]);
    expect(cam('drive')).toMatch(/^cam_/);
  });

  it('alerts.onlyFor [person]: no motion alert and no vehicle alert on that camera, but a person alert and camera-offline', async () => {
    const at = Date.now();
    gateway.bus.emit('motion.start', { cameraId: 'porch', at, score: 0.7 });
    confirmed('porch', 'trk_3', 'vehicle', { at: at + 100, eventId: 'evt-2' });
    confirmed('porch', 'trk_4', 'animal', { at: at + 150, eventId: 'evt-2' });
    confirmed('porch', 'trk_5', 'person', { at: at + 200, eventId: 'evt-2', score: 0.77 });
    gateway.bus.emit('camera.state', { cameraId: 'porch', health: 'reconnecting' });
    await waitFor('the person alert', () => alertsOf('object', 'porch').length >= 1, 10_000);
    await waitFor('the camera-offline alert', () => alertsOf('camera-offline', 'porch').length >= 1, 10_000);
    // A marker from a camera without onlyFor: what porch published before it has arrived once it has.
    gateway.bus.emit('motion.start', { cameraId: 'drive', at: at + 300, score: 0.5 });
    await waitFor('the marker', () => alertsOf('motion', 'drive').length >= 2, 10_000);
    expect(alertsOf('object', 'porch')).toEqual([{ type: 'object', label: 'person', camera: cam('porch'), event: 'evt-2', score: 0.77, at: at + 200 }]);
    expect(alertsOf('motion', 'porch')).toEqual([]);
  });

  it('the sealed state counts confirmed objects per camera and label; the clear part names no label', async () => {
    // The status reply carries the state as it is now (sealed to the household).
    const status = await app.request('status', {}, { sign: false });
    expect(status.status).toBe('ok');
    const state = (status.data as { state: { detections?: { since: number; cameras: Record<string, Record<string, { confirmed: number; lastAt: number }>> } } }).state;
    expect(state.detections?.cameras).toEqual({
      // Counted whether or not an alert went out (onlyFor narrows alerts, not what was seen).
      [cam('porch')]: { vehicle: { confirmed: 1, lastAt: expect.any(Number) as number }, animal: { confirmed: 1, lastAt: expect.any(Number) as number }, person: { confirmed: 1, lastAt: expect.any(Number) as number } },
      [cam('drive')]: { vehicle: { confirmed: 2, lastAt: expect.any(Number) as number } },
    });
    expect(state.detections!.since).toBeLessThanOrEqual(Date.now());

    // The retained state, as anyone on the broker sees it: counts only inside the sealed part.
    const probe = await mqtt.connectAsync(url);
    const states: Buffer[] = [];
    probe.on('message', (topic, payload) => {
      if (topic === `camveil/${HUB}/state`) states.push(payload);
    });
    await probe.subscribeAsync(`camveil/${HUB}/state`, { qos: 1 });
    // The state goes out every 10 s (never at a detection: its timing would tell the broker when).
    let clear: string | undefined;
    const deadline = Date.now() + 30_000;
    while (clear === undefined) {
      if (Date.now() > deadline) throw new Error('timed out waiting for a retained state with the counts sealed');
      const raw = states.shift();
      if (raw === undefined) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const text = Buffer.from((JSON.parse(raw.toString('utf8')) as { payload: string }).payload, 'base64').toString('utf8');
      const sealed = (JSON.parse(text) as { sealed?: string }).sealed;
      if (sealed === undefined) continue;
      const opened = JSON.parse((await decryptToBuffer(identity, Buffer.from(sealed, 'base64'))).toString('utf8')) as { detections?: { cameras: Record<string, unknown> } };
      if (opened.detections?.cameras[cam('drive')] !== undefined) clear = text;
    }
    await probe.endAsync();
    expect(clear).toContain('"health"');
    expect(clear).not.toMatch(/person|vehicle|animal|detections|confirmed/);
  });

  it('Home Assistant: an occupancy sensor per tracked label per camera, ON while a confirmed object is in view', async () => {
    const configTopics = () => new Set(haSeen.filter((s) => s.topic.endsWith('/config') && s.payload !== '').map((s) => s.topic));
    const node = `camveil_${HUB}`;
    const expected = ['porch_person', 'porch_animal', 'porch_vehicle', 'drive_vehicle'].map((e) => `homeassistant/binary_sensor/${node}/${e}/config`);
    await waitFor('the object sensors announced', () => expected.every((t) => configTopics().has(t)), 10_000);
    const objectConfigs = [...configTopics()].filter((t) => /_(person|animal|vehicle)\/config$/.test(t));
    expect(objectConfigs.sort()).toEqual([...expected].sort());
    const person = JSON.parse(haSeen.findLast((s) => s.topic === expected[0])!.payload) as Record<string, unknown>;
    expect(person).toMatchObject({ device_class: 'occupancy', state_topic: `camveil/${HUB}/camera/porch/object/person`, payload_on: 'ON', payload_off: 'OFF' });

    const personState = () => haSeen.filter((s) => s.topic === `camveil/${HUB}/camera/porch/object/person`).at(-1)?.payload;
    // porch's trk_5 went OFF with the camera.state above (a camera that does not stream sees nothing).
    await waitFor('person OFF', () => personState() === 'OFF', 10_000);
    confirmed('porch', 'trk_6', 'person');
    await waitFor('person ON', () => personState() === 'ON', 10_000);
    gateway.bus.emit('object.ended', { cameraId: 'porch', trackId: 'trk_6', label: 'person', at: Date.now() });
    await waitFor('person OFF once its last track ended', () => personState() === 'OFF', 10_000);
    // Nothing names a person or a track: labels only.
    for (const s of haSeen) expect(`${s.topic} ${s.payload}`).not.toMatch(/trk_|person_|face|identit/i);
  });
});
