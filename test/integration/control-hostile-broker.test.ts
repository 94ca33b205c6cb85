import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runApp, type AppAction } from '../../src/commands/app.js';
import { runPair } from '../../src/commands/pair.js';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import { generateAppKey } from '../../src/control/app-key.js';
import { openHubMessage, type PinnedHub } from '../../src/control/hub-message.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys, rawPublicKeyOf } from '../../src/crypto/hub-keys.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { MitmBroker, type Tamper } from '../harness/mitm-broker.js';
import { startBroker, type BrokerKind, type TestBroker } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { replyOf } from '../harness/hub-keys.js';
import { clearTextOfMessage, findPlaintext } from '../harness/plaintext-scan.js';
import { waitFor } from '../harness/wait.js';

const PASSWORD = 'garage-Secret-42';
/** What request args carry that the broker must never read: a camera, settings, a person, device labels. */
const CAMERA = { id: 'sidegate', name: 'Side Garage Door', source: 'rtsp://127.0.0.1:9/Streaming/Channels/4711', credentials: { username: 'admin' } };
const MASK_CORNER = 0.123457;
const PERSON = 'Ada Example';
const PAIR_LABEL = 'Kitchen Phone of Anna';
const DEVICE_LABEL = 'Grandma Tablet';

/**
 * The broker as an adversary (issue 11): `camveil app` talks to the hubs through a man-in-the-middle proxy
 * in front of a real broker, which records every byte and rewrites, forges, drops and replays packets.
 */
function hostileBrokerSuite(kind: BrokerKind): void {
  let broker: TestBroker;
  let proxy: MitmBroker;
  let root: string;
  let identityFile: string;
  let recipient: string;
  let identity: string;
  const gateways: Record<string, Gateway> = {};
  const configs: Record<string, string> = {};
  const pinned: Record<string, PinnedHub> = {};
  const hubIdentity: Record<string, string> = {};
  /** The attacker's own keys: what it would like the app to seal to and believe. */
  const attacker = { signingKey: generateKeyPairSync('ed25519').privateKey, identity: '', recipient: '' };
  let stateFile: string;
  const watchers: MqttClient[] = [];

  async function startHub(hubId: string, cameras: object[]): Promise<void> {
    const raw = { hub: { id: hubId, region: 'DE' }, dataDir: path.join(root, hubId), household: { recipients: [recipient] }, mqtt: { url: broker.url }, cameras };
    const file = path.join(root, `${hubId}.json`);
    writeFileSync(file, JSON.stringify(raw));
    configs[hubId] = file;
    const gateway = new Gateway({ config: validateConfig(raw, file, root), logger: createLogger({ level: 'silent' }), backoff: { initialMs: 60_000, maxMs: 60_000 } });
    gateways[hubId] = gateway;
    await gateway.start();
    const keys = await loadOrCreateHubKeys(path.join(root, hubId));
    pinned[hubId] = { hubId, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient };
    hubIdentity[hubId] = keys.identity;
    // The hub subscribes once its client connected: wait for its retained online.
    const watcher = await mqtt.connectAsync(broker.url);
    watchers.push(watcher);
    let online = false;
    watcher.on('message', (topic, payload) => {
      if (topic === `camveil/${hubId}/availability` && payload.toString() === 'online') online = true;
    });
    await watcher.subscribeAsync(`camveil/${hubId}/availability`);
    await waitFor(`${hubId} online`, () => online, 30_000);
  }

  async function app(action: AppAction, hub: string, state = stateFile): Promise<{ code: number; out: string }> {
    const out: string[] = [];
    const code = await runApp(action, { broker: proxy.url, hub, state }, { stdout: (t) => out.push(t), stderr: (t) => out.push(t) });
    return { code, out: out.join('\n') };
  }

  async function pairingCode(hub: string): Promise<string> {
    const out: string[] = [];
    expect(await runPair({ config: configs[hub]!, json: true }, { stdout: (t) => out.push(t), stderr: () => undefined })).toBe(0);
    return (JSON.parse(out[0]!) as { code: string }).code;
  }

  /** While `tamper` is set, the proxy applies it; afterwards everything passes again. */
  async function withTamper<T>(tamper: Tamper, run: () => Promise<T>): Promise<T> {
    proxy.tamper = tamper;
    try {
      return await run();
    } finally {
      proxy.tamper = undefined;
    }
  }

  /** A hub message re-signed by the attacker after `edit` changed its payload. */
  function resigned(bytes: Buffer, edit: (payload: Record<string, unknown>) => void): Buffer {
    const envelope = JSON.parse(bytes.toString()) as { payload: string };
    const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as Record<string, unknown>;
    edit(payload);
    const out = Buffer.from(JSON.stringify(payload));
    return Buffer.from(JSON.stringify({ payload: out.toString('base64'), sig: sign(null, out, attacker.signingKey).toString('base64') }));
  }

  function requestPayload(packet: IPublishPacket): { transaction: string } & Record<string, unknown> {
    const envelope = JSON.parse(Buffer.from(packet.payload as Buffer).toString()) as { payload: string };
    return JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as { transaction: string } & Record<string, unknown>;
  }

  beforeAll(async () => {
    broker = await startBroker(kind);
    proxy = await MitmBroker.start(broker.port);
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-hostile-'));
    identity = await generateX25519Identity();
    recipient = await identityToRecipient(identity);
    identityFile = path.join(root, 'household.key');
    writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
    attacker.identity = await generateX25519Identity();
    attacker.recipient = await identityToRecipient(attacker.identity);
    stateFile = path.join(root, 'app-state.json');
    // Hub A has a camera that cannot be reached (it keeps reconnecting): its name and id must not leak.
    await startHub('hub-a', [{ id: 'porch', name: 'Porch Camera', source: 'rtsp://127.0.0.1:1/videoMain' }]);
    await startHub('hub-b', []);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(watchers.map((w) => w.endAsync().catch(() => undefined)));
    for (const g of Object.values(gateways)) await g.stop().catch(() => undefined);
    await proxy?.stop();
    await broker?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('pairing: a broker that substitutes its own hub keys (without the code) is refused; nothing is pinned', async () => {
    const code = await pairingCode('hub-a');
    const victimState = path.join(root, 'victim-state.json');
    const result = await withTamper(
      (packet, direction) => {
        if (direction !== 'toClient' || packet.cmd !== 'publish' || packet.topic !== 'camveil/hub-a/response/pair') return undefined;
        const payload = resigned(Buffer.from(packet.payload as Buffer), (p) => {
          const data = (p.response as { data: { hub: Record<string, string> } }).data;
          data.hub.recipient = attacker.recipient;
          data.hub.signingKey = rawPublicKeyOf(attacker.signingKey);
        });
        return { ...packet, payload };
      },
      () => app({ kind: 'pair', code, identity: identityFile }, 'hub-a', victimState),
    );
    expect(result.code).toBe(1);
    expect(JSON.parse(result.out)).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_HUB_UNVERIFIED', message: expect.stringMatching(/proof/) as string } });
    expect(result.out).not.toContain('"status": "ok"');
    const saved = JSON.parse(readFileSync(victimState, 'utf8')) as { hubs: Record<string, unknown> };
    expect(saved.hubs).toEqual({});

    // Untampered, with a fresh code: the app pins exactly the hub's own keys.
    const genuine = await app({ kind: 'pair', code: await pairingCode('hub-a'), identity: identityFile, label: PAIR_LABEL }, 'hub-a');
    expect(genuine.code, genuine.out).toBe(0);
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { hubs: Record<string, PinnedHub> };
    expect(state.hubs['camveil/hub-a']).toEqual(pinned['hub-a']);
    const second = await app({ kind: 'pair', code: await pairingCode('hub-b'), identity: identityFile }, 'hub-b');
    expect(second.code, second.out).toBe(0);
  }, 120_000);

  it('after pairing: the camera password is sealed to the pinned hub recipient only, and a forged reply is refused', async () => {
    const passwordFile = path.join(root, 'pw');
    writeFileSync(passwordFile, PASSWORD, { mode: 0o600 });
    const added = await app({ kind: 'cameras-add', id: 'cam9', source: 'rtsp://127.0.0.1:1/x', user: 'admin', passwordFile }, 'hub-a');
    expect(added.code, added.out).toBe(0);
    const request = proxy.publishes().find((p) => p.direction === 'toBroker' && p.packet.topic === 'camveil/hub-a/request/cameras/add');
    // The args as a whole are sealed to the pinned hub recipient, the password once more inside them.
    const payload = requestPayload(request!.packet);
    expect(payload.args).toBeUndefined();
    const sealedArgs = Buffer.from(payload.sealedArgs as string, 'base64');
    await expect(decryptToBuffer(attacker.identity, sealedArgs)).rejects.toMatchObject({ code: 'CAMVEIL_E_DECRYPT_FAILED' });
    const args = JSON.parse((await decryptToBuffer(hubIdentity['hub-a']!, sealedArgs)).toString()) as { camera: { id: string }; sealedPassword: string };
    expect(args.camera.id).toBe('cam9');
    const sealed = Buffer.from(args.sealedPassword, 'base64');
    await expect(decryptToBuffer(attacker.identity, sealed)).rejects.toMatchObject({ code: 'CAMVEIL_E_DECRYPT_FAILED' });
    expect((await decryptToBuffer(hubIdentity['hub-a']!, sealed)).toString()).toBe(PASSWORD);

    // The broker holds the request back and answers "ok" itself, signed with its own key: refused.
    const removed = await withTamper(
      (packet, direction, connection) => {
        if (direction !== 'toBroker' || packet.cmd !== 'publish' || packet.topic !== 'camveil/hub-a/request/cameras/remove') return undefined;
        const { transaction } = requestPayload(packet);
        if (packet.qos > 0) connection.inject('toClient', { cmd: 'puback', messageId: packet.messageId! });
        const forged = resigned(Buffer.from(JSON.stringify({ payload: Buffer.from('{}').toString('base64') })), (p) =>
          Object.assign(p, { v: 2, kind: 'response', hub: 'hub-a', base: 'camveil', ts: Date.now(), command: 'cameras/remove', response: { data: {}, status: 'ok', transaction } }),
        );
        connection.forgePublish('toClient', 'camveil/hub-a/response/cameras/remove', forged);
        return null;
      },
      () => app({ kind: 'cameras-remove', id: 'cam9' }, 'hub-a'),
    );
    expect(removed.code).toBe(1);
    expect(JSON.parse(removed.out)).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_HUB_UNVERIFIED' } });
    expect(gateways['hub-a']!.state().cameras.map((c) => c.cameraId)).toContain('cam9');
  }, 120_000);

  it('a forged {"status":"ok"} with no hub behind it makes consent withdraw fail (exit 1), and the hub is unchanged', async () => {
    for (const action of [
      { kind: 'consent', action: 'accept-policy', version: '2021-10-31' },
      { kind: 'consent', action: 'grant', consent: 'localRecording' },
      { kind: 'consent', action: 'grant', consent: 'cloudUpload' },
    ] as const) {
      const r = await app(action, 'hub-a');
      expect(r.code, r.out).toBe(0);
    }
    await waitFor('hub A in cloud mode', () => gateways['hub-a']!.state().mode.mode === 'cloud', 10_000);
    const withdraw = await withTamper(
      (packet, direction, connection) => {
        if (direction !== 'toBroker' || packet.cmd !== 'publish' || !packet.topic.startsWith('camveil/hub-a/request/')) return undefined;
        // The request never reaches a hub; the broker answers the way an unauthenticated v1 reply looked.
        const { transaction } = requestPayload(packet);
        if (packet.qos > 0) connection.inject('toClient', { cmd: 'puback', messageId: packet.messageId! });
        connection.forgePublish('toClient', 'camveil/hub-a/response/consent/set', JSON.stringify({ data: {}, status: 'ok', transaction }));
        return null;
      },
      () => app({ kind: 'consent', action: 'withdraw', consent: 'cloudUpload' }, 'hub-a'),
    );
    expect(withdraw.code).toBe(1);
    expect(JSON.parse(withdraw.out)).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_HUB_UNVERIFIED' } });
    expect(withdraw.out).not.toContain('"status": "ok"');
    expect(gateways['hub-a']!.state().mode.mode).toBe('cloud');
  }, 120_000);

  it('grants signed for hub A, replayed on hub B by the broker, are refused; hub B stays local-only', async () => {
    const grants = proxy.publishes().filter((p) => p.direction === 'toBroker' && p.packet.topic === 'camveil/hub-a/request/consent/set');
    const signed = grants.filter((g) => 'sig' in (JSON.parse(Buffer.from(g.packet.payload as Buffer).toString()) as object));
    expect(signed.length).toBeGreaterThanOrEqual(3);
    const operator = await mqtt.connectAsync(broker.url);
    watchers.push(operator);
    const replies: Buffer[] = [];
    operator.on('message', (topic, payload) => {
      if (topic === 'camveil/hub-b/response/consent/set') replies.push(payload);
    });
    await operator.subscribeAsync('camveil/hub-b/response/consent/set', { qos: 1 });
    for (const g of signed) await operator.publishAsync('camveil/hub-b/request/consent/set', Buffer.from(g.packet.payload as Buffer), { qos: 1 });
    await waitFor('hub B to answer every replay', () => replies.length >= signed.length, 30_000);
    for (const reply of replies) {
      // Hub B's refusals: the code in clear, the message sealed to its household (which opens it here).
      const response = await replyOf(reply, pinned['hub-b']!, Date.now(), identity);
      expect(response).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID', message: expect.stringMatching(/another hub/) as string } });
    }
    expect(gateways['hub-b']!.state().mode).toMatchObject({ mode: 'local-only' });
  }, 120_000);

  it('the app refuses an unsigned, tampered or re-signed state and status; the genuine state opens', async () => {
    const client = await mqtt.connectAsync(proxy.url);
    try {
      const reader = new AppClient({ client, baseTopic: 'camveil', hubId: 'hub-a', stateFile, timeoutMs: 30_000, identity });
      const onState = (edit: (payload: Buffer) => Buffer): Tamper => (packet, direction) =>
        direction === 'toClient' && packet.cmd === 'publish' && packet.topic === 'camveil/hub-a/state' ? { ...packet, payload: edit(Buffer.from(packet.payload as Buffer)) } : undefined;
      // Unsigned, as a v1 state looked.
      await withTamper(onState(() => Buffer.from(JSON.stringify({ mode: { mode: 'local-only' } }))), async () =>
        expect(reader.readState(identity)).rejects.toMatchObject({ code: 'CAMVEIL_E_HUB_UNVERIFIED' }),
      );
      // The clear health edited, the hub's signature kept.
      await withTamper(
        onState((bytes) => {
          const envelope = JSON.parse(bytes.toString()) as { payload: string; sig: string };
          const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as { health: { cameras: Record<string, string> } };
          for (const cam of Object.keys(payload.health.cameras)) payload.health.cameras[cam] = 'streaming';
          return Buffer.from(JSON.stringify({ ...envelope, payload: Buffer.from(JSON.stringify(payload)).toString('base64') }));
        }),
        async () => expect(reader.readState(identity)).rejects.toMatchObject({ code: 'CAMVEIL_E_HUB_UNVERIFIED' }),
      );
      // Re-signed by the broker's key.
      await withTamper(
        onState((bytes) => resigned(bytes, (p) => Object.assign(p, { ts: Date.now() }))),
        async () => expect(reader.readState(identity)).rejects.toMatchObject({ code: 'CAMVEIL_E_HUB_UNVERIFIED' }),
      );
      const genuine = await reader.readState(identity);
      expect(genuine.health).toMatchObject({ availability: 'online', protocol: 2 });
      expect(Object.values(genuine.health.cameras).sort()).toEqual(['reconnecting', 'reconnecting']);
      expect(genuine.state).toMatchObject({ mode: { mode: 'cloud' }, cameras: expect.arrayContaining([expect.objectContaining({ cameraId: 'porch' })]) as unknown });
    } finally {
      await client.endAsync();
    }
    const status = await withTamper(
      (packet, direction) =>
        direction === 'toClient' && packet.cmd === 'publish' && packet.topic === 'camveil/hub-a/response/status'
          ? { ...packet, payload: resigned(Buffer.from(packet.payload as Buffer), () => undefined) }
          : undefined,
      () => app({ kind: 'status', identity: identityFile }, 'hub-a'),
    );
    expect(status.code).toBe(1);
    expect(JSON.parse(status.out)).toMatchObject({ error: { code: 'CAMVEIL_E_HUB_UNVERIFIED' } });
    const untampered = await app({ kind: 'status', identity: identityFile }, 'hub-a');
    expect(untampered.code, untampered.out).toBe(0);
    expect(JSON.parse(untampered.out)).toMatchObject({ status: 'ok', data: { state: { mode: { mode: 'cloud' } } } });
  }, 120_000);

  it('request args reach the hub sealed: a named camera, settings, a person to enrol, a device label', async () => {
    const client = await mqtt.connectAsync(proxy.url);
    try {
      const phone = new AppClient({ client, baseTopic: 'camveil', hubId: 'hub-a', stateFile, timeoutMs: 30_000, identity });
      expect(await phone.request('cameras/add', { camera: CAMERA }, { sign: true })).toMatchObject({ status: 'ok' });
      expect(gateways['hub-a']!.state().cameras.map((c) => c.cameraId)).toContain(CAMERA.id);
      const mask = [[MASK_CORNER, 0.5], [1, 0.5], [1, 1]];
      expect(await phone.request('config/set', { cameras: [{ id: 'porch', privacyMasks: [mask] }], retentionDays: 23 }, { sign: true })).toMatchObject({ status: 'ok' });
      const tablet = generateAppKey();
      expect(await phone.request('devices/add', { publicKey: tablet.publicKey, recipient, label: DEVICE_LABEL }, { sign: true })).toMatchObject({ status: 'ok', data: { keyId: tablet.keyId } });
      // The phone's reads cross the broker too: their results open for it (and are scanned below).
      const listed = await phone.request('cameras/list', {}, { sign: true });
      expect(listed).toMatchObject({ status: 'ok', data: { cameras: expect.arrayContaining([expect.objectContaining({ id: CAMERA.id, name: CAMERA.name })]) as unknown } });
      expect(JSON.stringify((await phone.request('config/get', {}, { sign: true })).data)).toContain(String(MASK_CORNER));
      expect(await phone.request('consent/get', {}, { sign: false })).toMatchObject({ status: 'ok', data: { consent: { cloudUpload: true } } });
      expect(JSON.stringify((await phone.request('devices/list', {}, { sign: false })).data)).toContain(DEVICE_LABEL);
    } finally {
      await client.endAsync();
    }
    // Enrolment: the hub has no face models configured, so it refuses; the name still crossed the broker.
    // A real photo: the app scales and re-encodes it before sealing (it refuses what is not an image).
    const photo = path.join(process.cwd(), 'node_modules', '@vladmandic', 'face-api', 'demo', 'sample2.jpg');
    const enrol = await app({ kind: 'faces-enrol', name: PERSON, photos: [photo] }, 'hub-a');
    expect(JSON.parse(enrol.out)).toMatchObject({ status: 'error', error: { code: expect.stringMatching(/UNKNOWN_COMMAND|CONSENT_REQUIRED/) as string } });
    const sent = proxy.publishes().filter((p) => p.direction === 'toBroker' && /request\/(cameras\/add|config\/set|devices\/add|faces\/enrol|pair)$/.test(p.packet.topic));
    expect(new Set(sent.map((p) => p.packet.topic.split('/request/')[1]))).toEqual(new Set(['cameras/add', 'config/set', 'devices/add', 'faces/enrol', 'pair']));
    for (const p of sent) {
      const payload = requestPayload(p.packet);
      if (p.packet.topic.endsWith('/pair')) expect(payload.args).toMatchObject({ publicKey: expect.any(String) as string });
      else expect(Object.keys(payload).sort()).toEqual(['base', 'command', 'hub', 'sealedArgs', 'seq', 'transaction', 'ts', 'v']);
    }
  }, 120_000);

  it('unsigned reads published by a broker-side client get status and code only: no camera, setting, consent, label or activity in clear', async () => {
    const operator = await mqtt.connectAsync(broker.url);
    watchers.push(operator);
    const replies = new Map<string, Buffer>();
    operator.on('message', (topic, payload) => {
      if (topic.startsWith('camveil/hub-a/response/')) replies.set(topic.slice('camveil/hub-a/response/'.length), payload);
    });
    await operator.subscribeAsync('camveil/hub-a/response/#', { qos: 1 });
    // Every read there is, unsigned as a broker can send them: reads anyone may ask for, and those refused
    // for want of a signature (faces/*, exports), whose refusal must not say more than its code either.
    const reads = ['cameras/list', 'config/get', 'consent/get', 'devices/list', 'status', 'faces/list', 'faces/sightings', 'data/export', 'audit/export'];
    for (const command of reads) {
      const payload = Buffer.from(JSON.stringify({ v: 2, hub: 'hub-a', base: 'camveil', command, transaction: `broker-${command}`, seq: 1, ts: Date.now() }));
      await operator.publishAsync(`camveil/hub-a/request/${command}`, JSON.stringify({ payload: payload.toString('base64') }), { qos: 1 });
    }
    await waitFor('the hub to answer every read', () => reads.every((c) => replies.has(c)), 30_000);
    const clear = Buffer.concat([...replies.values()].map(clearTextOfMessage));
    const needles = [
      'porch', 'Porch Camera', CAMERA.id, CAMERA.name, String(MASK_CORNER), PAIR_LABEL, DEVICE_LABEL,
      'retentionDays', 'privacyMasks', 'sensitivity', 'zones', 'analysisFps',
      'localRecording', 'cloudUpload', 'faceRecognition', 'policyInForce', '2021-10-31', '"cloud"', '"mode"',
      'reconnecting', 'motion', '"active"', 'framesOffered', '"clips"', '"events"', 'health', 'keyId', 'pairedAt',
    ].map((n) => ({ label: n, bytes: Buffer.from(n) }));
    expect(findPlaintext(clear, needles)).toEqual([]);
    for (const command of reads) {
      // In clear: the signed envelope's fixed fields, the status and an error's code; nothing else.
      const wire = openHubMessage(replies.get(command)!, pinned['hub-a']!, 'response', Date.now()).response;
      expect(Object.keys(wire).sort(), command).toEqual(wire.status === 'ok' ? ['sealed', 'status', 'transaction'] : ['error', 'sealed', 'status', 'transaction']);
      if (wire.error !== undefined) expect(Object.keys(wire.error)).toEqual(['code']);
      await expect(decryptToBuffer(attacker.identity, Buffer.from(wire.sealed!, 'base64'))).rejects.toMatchObject({ code: 'CAMVEIL_E_DECRYPT_FAILED' });
    }
    // The household opens them: the camera list does hold what the scan looks for.
    expect(await replyOf(replies.get('cameras/list')!, pinned['hub-a']!, Date.now(), identity)).toMatchObject({
      status: 'ok',
      data: { cameras: expect.arrayContaining([expect.objectContaining({ id: 'porch', name: 'Porch Camera' })]) as unknown },
    });
    expect(await replyOf(replies.get('faces/list')!, pinned['hub-a']!, Date.now(), identity)).toMatchObject({ status: 'error', error: { code: expect.stringMatching(/NOT_AUTHORISED|UNKNOWN_COMMAND/) as string, message: expect.stringMatching(/faces\/list/) as string } });
  }, 120_000);

  it('everything the broker saw holds no camera name, password, person name or activity in clear', () => {
    // Clear text: the raw bytes and every base64 payload inside them decoded (a request's payload is signed, not sealed).
    const decoded = proxy.publishes().flatMap((p) => {
      try {
        const body = JSON.parse(Buffer.from(p.packet.payload as Buffer).toString()) as { payload?: unknown };
        return typeof body.payload === 'string' ? [Buffer.from(body.payload, 'base64')] : [];
      } catch {
        return [];
      }
    });
    const clear = Buffer.concat([proxy.traffic(), ...decoded]);
    expect(clear.length).toBeGreaterThan(10_000);
    expect(clear.includes(Buffer.from('camveil/hub-a/state'))).toBe(true);
    const args = [CAMERA.id, CAMERA.name, '127.0.0.1:9', 'Streaming/Channels/4711', 'cam9', String(MASK_CORNER), PERSON, PAIR_LABEL, DEVICE_LABEL];
    const needles = ['porch', 'Porch Camera', PASSWORD, '"active"', 'motion', 'known-face', 'unknown-face', 'framesOffered', '"clips"', '"events"', ...args].map((n) => ({
      label: n,
      bytes: Buffer.from(n),
    }));
    expect(findPlaintext(clear, needles)).toEqual([]);
  });
}

describe('a hostile broker (MITM proxy) in front of aedes', () => hostileBrokerSuite('aedes'));
describeWithPeers(['mosquitto'], "a hostile broker (MITM proxy) in front of Debian's mosquitto", () => hostileBrokerSuite('mosquitto'));
