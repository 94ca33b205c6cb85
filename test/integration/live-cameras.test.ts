import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHubContext } from '../../src/commands/hub-context.js';
import { runPair } from '../../src/commands/pair.js';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { camveilCli } from '../harness/hub-process.js';
import { freePort } from '../harness/mosquitto.js';
import { waitFor } from '../harness/wait.js';

/**
 * Issue 12, "shared mutable options" and "the gate is not the only judge": a camera added over MQTT after
 * start is seen by Home Assistant discovery and by the gate's camera facts; the console and the service
 * answer the same on face capability; a withdrawal made by the CLI in another process reaches the running
 * hub's enforcer, which `consent.changed` follows.
 */
describe('live cameras and one judge (gateway with embedded broker)', () => {
  let root: string;
  let gateway: Gateway;
  let app: AppClient;
  let appMqtt: MqttClient;
  let watcher: MqttClient;
  let configFile: string;
  const discovery = new Map<string, string>();

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-live-'));
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const raw = {
      hub: { id: 'live-hub', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      household: { recipients: [recipient] },
      mqtt: { url, embeddedBroker: true },
      homeAssistant: { discovery: true },
      privacy: { faceCapableOverride: true },
    };
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    watcher = await mqtt.connectAsync(url);
    watcher.on('message', (topic, payload) => discovery.set(topic, payload.toString()));
    await watcher.subscribeAsync('homeassistant/#', { qos: 1 });
    appMqtt = await mqtt.connectAsync(url);
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: 'live-hub', timeoutMs: 60_000, identity });
    await app.start();
    const out: string[] = [];
    expect(await runPair({ config: configFile, json: true }, { stdout: (t) => out.push(t), stderr: () => undefined })).toBe(0);
    const { code } = JSON.parse(out[0]!) as { code: string };
    expect((await app.pair(code, recipient, 'test phone')).status).toBe('ok');
  }, 120_000);

  afterAll(async () => {
    await app?.stop();
    await appMqtt?.endAsync();
    await watcher?.endAsync();
    await gateway?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('a camera added over MQTT after start is announced to Home Assistant and judged by the gate; removing it withdraws it', async () => {
    const motionConfig = 'homeassistant/binary_sensor/camveil_live-hub/garage_motion/config';
    expect(discovery.has(motionConfig)).toBe(false);
    const camera = { id: 'garage', source: 'rtsp://127.0.0.1:1/videoMain', faceRecognition: true };
    expect(await app.request('cameras/add', { camera }, { sign: true })).toMatchObject({ status: 'ok', data: { added: true } });
    await waitFor('discovery of the added camera', () => (discovery.get(motionConfig) ?? '') !== '', 60_000);
    expect(JSON.parse(discovery.get(motionConfig)!)).toMatchObject({ unique_id: 'camveil_live-hub_garage_motion' });
    // The gate knows the camera (household switch on, capable by the override); only consent is missing.
    expect(gateway.gate.mayRecogniseFaces('garage').reason).not.toBe('camera-unknown');
    expect((await app.request('cameras/remove', { cameraId: 'garage' }, { sign: true })).status).toBe('ok');
    await waitFor('the removed camera withdrawn from discovery', () => discovery.get(motionConfig) === '', 60_000);
    // Put back for the next test.
    expect((await app.request('cameras/add', { camera }, { sign: true })).status).toBe('ok');
  }, 180_000);

  it('the console (hub-context) and the service give the same face answer for the same camera', async () => {
    expect((await app.request('consent/set', { action: 'accept-policy', version: '2021-10-31' }, { sign: true })).status).toBe('ok');
    expect((await app.request('consent/set', { action: 'grant', consent: 'faceRecognition' }, { sign: true })).status).toBe('ok');
    const service = gateway.gate.mayRecogniseFaces('garage');
    expect(service).toEqual({ allowed: true, reason: 'ok' });
    const hub = await openHubContext(configFile);
    try {
      expect(hub.cameraFacts.capability('garage')).toEqual({ capable: true, reason: 'household-override' });
      expect(hub.gate.mayRecogniseFaces('garage')).toEqual(service);
    } finally {
      hub.close();
    }
  }, 120_000);

  it('a withdrawal made by the CLI in another process reaches the running hub: mode enforced, then consent.changed', async () => {
    expect((await app.request('consent/set', { action: 'grant', consent: 'localRecording' }, { sign: true })).status).toBe('ok');
    expect((await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: true })).status).toBe('ok');
    expect(gateway.state().mode.mode).toBe('cloud');
    const seen: string[] = [];
    let told: CamveilEvents['consent.changed'] | undefined;
    const offs = [
      gateway.bus.on('mode.changed', (e) => seen.push(`mode:${e.mode}`)),
      gateway.bus.on('consent.changed', (e) => {
        seen.push('consent');
        told = e;
      }),
    ];
    try {
      const r = await camveilCli(['consent', 'withdraw', 'cloudUpload', '--config', configFile], 120_000);
      expect(r.code).toBe(0);
      await waitFor('consent.changed from the CLI write', () => told !== undefined && told.consent !== 'unreadable' && !told.consent.cloudUpload, 60_000);
      // The enforcer ran first (local-only), then the event every other effect follows.
      expect(seen).toEqual(['mode:local-only', 'consent']);
      expect(told!.mode).toEqual({ mode: 'local-only', reason: 'cloud-upload-withdrawn' });
      expect(told!.seq).toBe(gateway.consent.snapshot() === 'unreadable' ? -1 : (gateway.consent.snapshot() as { seq: number }).seq);
      expect(gateway.gate.mayRecogniseFaces('garage').allowed).toBe(true);
    } finally {
      offs.forEach((off) => off());
    }
  }, 180_000);
});
