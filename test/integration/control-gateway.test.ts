import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { runPair } from '../../src/commands/pair.js';
import { decryptToBuffer, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { AppClient } from '../../src/control/app-client.js';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { freePort, startMosquitto } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { waitFor } from '../harness/wait.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';

const FACE_DEMO = path.join(process.cwd(), 'node_modules', '@vladmandic', 'face-api', 'demo');

/** The control plane inside the running gateway, with its embedded broker: what the phone app does. */
describe('gateway control plane over MQTT (embedded broker)', () => {
  let root: string;
  let gateway: Gateway;
  let app: AppClient;
  let appMqtt: MqttClient;
  let url: string;
  let configFile: string;
  let recipient: string;
  let identity: string;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-ctl-'));
    identity = await generateX25519Identity();
    recipient = await identityToRecipient(identity);
    url = `mqtt://127.0.0.1:${await freePort()}`;
    const raw = {
      hub: { id: 'ctl-hub', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      household: { recipients: [recipient] },
      mqtt: { url, embeddedBroker: true },
    };
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    appMqtt = await mqtt.connectAsync(url);
    // The household identity, held by the phone: every reply's result is sealed to it (and the paired phones).
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: 'ctl-hub', timeoutMs: 30_000, identity });
    await app.start();
  });

  afterAll(async () => {
    await app?.stop();
    await appMqtt?.endAsync();
    await gateway?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('falls back to MQTT 3.1.1 with a broker that does not speak 5 (aedes)', () => {
    expect(gateway.state().mqtt).toEqual({ protocolVersion: 4 });
  });

  it('a fresh subscriber sees the retained availability and a signed state with health only in clear', async () => {
    const seen = new Map<string, string>();
    const probe = await mqtt.connectAsync(url);
    probe.on('message', (topic, payload) => seen.set(topic, payload.toString()));
    await probe.subscribeAsync('camveil/ctl-hub/#');
    await waitFor('retained availability and state', () => seen.has('camveil/ctl-hub/availability') && seen.has('camveil/ctl-hub/state'), 5000);
    await probe.endAsync();
    expect(seen.get('camveil/ctl-hub/availability')).toBe('online');
    const envelope = JSON.parse(seen.get('camveil/ctl-hub/state')!) as { payload: string; sig: string };
    expect(Object.keys(envelope).sort()).toEqual(['payload', 'sig']);
    const clear = Buffer.from(envelope.payload, 'base64').toString();
    const payload = JSON.parse(clear) as Record<string, unknown>;
    expect(payload).toMatchObject({ v: 2, kind: 'state', hub: 'ctl-hub', base: 'camveil', health: { availability: 'online', protocol: 2, cameras: {} } });
    expect(Object.keys(payload).sort()).toEqual(['base', 'health', 'hub', 'kind', 'sealed', 'ts', 'v']);
    expect(clear).not.toMatch(/AGE-SECRET-KEY|password|mode|local-only|motion|faces/);
  });

  it('pairs with the code `camveil pair` shows', async () => {
    const out: string[] = [];
    expect(await runPair({ config: configFile, json: true }, { stdout: (t) => out.push(t), stderr: () => undefined })).toBe(0);
    const { code } = JSON.parse(out[0]!) as { code: string };
    expect((await app.pair('WRONGCOD', recipient)).status).toBe('error');
    const paired = await app.pair(code, recipient, 'test phone');
    expect(paired.status).toBe('ok');
    const keys = await loadOrCreateHubKeys(path.join(root, 'hub'));
    expect(app.pinned).toEqual({ hubId: 'ctl-hub', baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient });
    // The retained state now checks against the pinned key, and its sealed part opens for the household.
    const { state } = await app.readState(identity);
    expect(state).toMatchObject({ mode: { mode: 'local-only' } });
  });

  it('refuses an unsigned grant (what a broker operator could send) and changes nothing', async () => {
    const r = await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: false });
    expect(r).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(gateway.state().mode.mode).toBe('local-only');
  });

  it('accepts signed grants from the paired app, and the hub leaves local-only mode', async () => {
    expect((await app.request('consent/set', { action: 'accept-policy', version: '2021-10-31' }, { sign: true })).status).toBe('ok');
    expect((await app.request('consent/set', { action: 'grant', consent: 'localRecording' }, { sign: true })).status).toBe('ok');
    const r = await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: true });
    expect(r).toMatchObject({ status: 'ok', data: { mode: { mode: 'cloud', reason: 'ok' } } });
    expect(gateway.state().mode).toEqual({ mode: 'cloud', reason: 'ok' });
  });

  it('refuses the same signed bytes replayed', async () => {
    const prepared = await app.prepare('consent/set', { action: 'grant', consent: 'localRecording' }, { sign: true });
    expect((await app.send(prepared.command, prepared.bytes, prepared.transaction)).status).toBe('ok');
    const again = await app.send(prepared.command, prepared.bytes, prepared.transaction);
    expect(again).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REPLAY' } });
  });

  it('enrols a person over MQTT with name and photo sealed to the hub; lists names sealed to the phone', async () => {
    // A crop around the largest face of a sample photo, made in memory.
    const photo = await sharp(path.join(FACE_DEMO, 'sample1.jpg')).extract({ left: 300, top: 230, width: 420, height: 480 }).jpeg().toBuffer();
    // The app client seals the args (name, photo) to the hub recipient it pinned at pairing.
    const args = { name: 'Ada Example', photos: [photo.toString('base64')] };
    // Without faceRecognition consent the hub refuses, and nothing is enrolled.
    expect(await app.request('faces/enrol', args, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_CONSENT_REQUIRED' } });
    expect((await app.request('consent/set', { action: 'grant', consent: 'faceRecognition' }, { sign: true })).status).toBe('ok');
    // Unsigned: refused at the door.
    expect(await app.request('faces/enrol', args, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    const enrolled = await app.request('faces/enrol', args, { sign: true });
    expect(enrolled, JSON.stringify(enrolled)).toMatchObject({ status: 'ok', data: { personId: expect.stringMatching(/^person_/) as string } });
    const listed = await app.request('faces/list', {}, { sign: true });
    const data = listed.data as { people: Array<{ personId: string }>; sealedNames: string };
    expect(JSON.stringify(data.people)).not.toContain('Ada');
    const names = JSON.parse((await decryptToBuffer(identity, Buffer.from(data.sealedNames, 'base64'))).toString()) as Array<{ name: string }>;
    expect(names.map((n) => n.name)).toEqual(['Ada Example']);
    expect((await app.request('faces/delete', { all: true }, { sign: true })).data).toEqual({ deleted: 1 });
  });

  it('adds an app-managed camera with its password sealed to the hub; unsigned refused; kept across restarts', async () => {
    const hubRecipient = app.requirePinned().recipient;
    const sealedPassword = (await encryptToBuffer([hubRecipient], Buffer.from('garage-Secret-42'))).toString('base64');
    const camera = { id: 'garage', source: 'rtsp://127.0.0.1:1/videoMain', credentials: { username: 'admin' } };
    expect(await app.request('cameras/add', { camera, sealedPassword }, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(await app.request('cameras/add', { camera: { ...camera, source: 'file:/etc/passwd' } }, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    expect(await app.request('cameras/add', { camera, sealedPassword }, { sign: true })).toMatchObject({ status: 'ok', data: { added: true } });
    // The camera runs (nothing listens on port 1: it reports that, without the password anywhere).
    await waitFor('the new camera to report', () => gateway.state().cameras.find((c) => c.cameraId === 'garage')?.error !== undefined, 15_000);
    expect(gateway.state().cameras.find((c) => c.cameraId === 'garage')!.error!.code).toBe('CAMVEIL_E_CAMERA_UNREACHABLE');
    expect(JSON.stringify(gateway.state())).not.toContain('garage-Secret-42');
    expect(readFileSync(path.join(root, 'hub', 'camveil.db')).includes(Buffer.from('garage-Secret-42'))).toBe(false);
    // It survives a restart of the hub.
    await gateway.stop();
    gateway = new Gateway({ config: validateConfig(JSON.parse(readFileSync(configFile, 'utf8')), configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    expect(gateway.state().cameras.map((c) => c.cameraId)).toContain('garage');
    await app.stop();
    await appMqtt.endAsync();
    appMqtt = await mqtt.connectAsync(url);
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: 'ctl-hub', timeoutMs: 30_000, key: app.key, pinned: app.requirePinned(), identity });
    await app.start();
    expect((await app.request('cameras/remove', { cameraId: 'garage' }, { sign: true })).status).toBe('ok');
    expect(gateway.state().cameras.map((c) => c.cameraId)).not.toContain('garage');
  });

  it('accepts an unsigned withdrawal: anyone may narrow what flows, and the hub is local-only at once', async () => {
    const r = await app.request('consent/set', { action: 'withdraw', consent: 'cloudUpload' }, { sign: false });
    expect(r).toMatchObject({ status: 'ok', data: { mode: { mode: 'local-only', reason: 'cloud-upload-withdrawn' } } });
    expect(gateway.state().mode.mode).toBe('local-only');
  });
});

describeWithPeers(['mosquitto'], "gateway control plane on Debian's mosquitto (MQTT 5)", () => {
  it('speaks MQTT 5 where the broker supports it, and the app works through it', async () => {
    const broker = await startMosquitto();
    const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-ctl5-'));
    const household = await generateX25519Identity();
    const raw = { hub: { id: 'ctl5', region: 'DE' }, dataDir: path.join(root, 'hub'), household: { recipients: [await identityToRecipient(household)] }, mqtt: { url: broker.url } };
    const gateway = new Gateway({ config: validateConfig(raw, 'test', root), logger: createLogger({ level: 'silent' }) });
    const client = await mqtt.connectAsync(broker.url);
    let app: AppClient | undefined;
    try {
      await gateway.start();
      const keys = await loadOrCreateHubKeys(path.join(root, 'hub'));
      app = new AppClient({ client, baseTopic: 'camveil', hubId: 'ctl5', timeoutMs: 5000, identity: household, pinned: { hubId: 'ctl5', baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
      expect(gateway.state().mqtt).toEqual({ protocolVersion: 5 });
      await app.start();
      // The hub subscribes once its client has connected: ask again until it answers.
      let r = await app.request('status', {}, { sign: false }).catch(() => undefined);
      for (let i = 0; r === undefined && i < 10; i++) r = await app.request('status', {}, { sign: false }).catch(() => undefined);
      expect(r?.status).toBe('ok');
      expect(await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    } finally {
      await app?.stop();
      await client.endAsync();
      await gateway.stop();
      await broker.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
