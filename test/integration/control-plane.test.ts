import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { AppClient } from '../../src/control/app-client.js';
import { generateAppKey } from '../../src/control/app-key.js';
import { defineHandler } from '../../src/control/command.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { Pairing } from '../../src/control/pairing.js';
import { openHubMessage } from '../../src/control/hub-message.js';
import { connectOptions } from '../../src/control/topics.js';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { describeWithPeers } from '../harness/peers.js';
import { startBroker, type BrokerKind, type TestBroker } from '../harness/mosquitto.js';
import { replyOf, testHubKeys, type TestHubKeys } from '../harness/hub-keys.js';

const BASE = 'camveil';
const MINUTE = 60_000;

/** The next message on `topic` (subscribing first) that `accept` takes, or a timeout. */
async function nextMessage(client: MqttClient, topic: string, accept: (payload: Buffer) => boolean = () => true, timeoutMs = 5_000): Promise<Buffer> {
  const received = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('message', listener);
      reject(new Error(`no message on ${topic} within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (t: string, payload: Buffer): void => {
      if (t !== topic || !accept(payload)) return;
      clearTimeout(timer);
      client.removeListener('message', listener);
      resolve(payload);
    };
    client.on('message', listener);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return received;
}

function controlPlaneSuite(kind: BrokerKind): void {
  let broker: TestBroker;
  let dir: string;
  let db: Database.Database;
  let registry: KeyRegistry;
  let audit: AuditLog;
  let hubClient: MqttClient;
  let plane: ControlPlane;
  let identity: string;
  let recipient: string;
  let clock = Date.now();
  const now = (): number => clock;
  const hubId = `hub-${kind}`;
  const calls = { widen: 0, narrow: 0 };
  const clients: MqttClient[] = [];
  const state = { mode: 'cloud', policyVersion: '2026-01', cameras: 1 };
  let fullState: object = state;
  let app: AppClient;
  let keys: TestHubKeys;

  async function connect(options: mqtt.IClientOptions = {}): Promise<MqttClient> {
    const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, ...options });
    clients.push(client);
    return client;
  }

  function makePlane(client: MqttClient): ControlPlane {
    return new ControlPlane({
      client,
      baseTopic: BASE,
      hubId,
      registry,
      audit,
      logger: silentLogger(),
      now,
      hub: keys.hub,
      recipients: () => [recipient],
      getState: () => fullState,
      getHealth: () => ({ cam_aaaaaaaaaaaaaaaa: 'streaming' }),
      handlers: {
        'test/widen': defineHandler({ requires: 'signature', args: z.strictObject({ n: z.number() }), run: (args) => ({ n: args.n, calls: ++calls.widen }) }),
        'test/narrow': defineHandler({ requires: 'none', args: z.strictObject({}), run: () => ({ calls: ++calls.narrow }) }),
      },
    });
  }

  /** An app that already holds the hub's keys (as if paired); `pinned: false` for one that has not paired. */
  async function newApp(pinned = true): Promise<AppClient> {
    return new AppClient({ client: await connect(), baseTopic: BASE, hubId, now, timeoutMs: 5_000, identity, ...(pinned ? { pinned: keys.pinned } : {}) });
  }

  beforeAll(async () => {
    broker = await startBroker(kind);
    dir = mkdtempSync(join(tmpdir(), 'camveil-control-'));
    db = openDatabase(dir);
    registry = new KeyRegistry(db);
    audit = new AuditLog(db);
    identity = await generateX25519Identity();
    recipient = await identityToRecipient(identity);
    keys = await testHubKeys(hubId, BASE);
    hubClient = await connect(connectOptions(BASE, hubId));
    plane = makePlane(hubClient);
    await plane.start();
    app = await newApp(false);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    db?.close();
    await broker?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('publishes retained availability online and a signed state: health in clear, the rest sealed', async () => {
    await plane.publishState();
    const watcher = await connect();
    const online = nextMessage(watcher, plane.topics.availability);
    const retainedState = nextMessage(watcher, plane.topics.state);
    expect((await online).toString()).toBe('online');
    const raw = (await retainedState).toString();
    expect(raw).not.toMatch(/policyVersion|cloud/);
    const reader = await newApp();
    expect(await reader.readState(identity)).toEqual({ health: { availability: 'online', protocol: 2, cameras: { cam_aaaaaaaaaaaaaaaa: 'streaming' } }, state });
    fullState = { cameras: [{ password: 'x' }] };
    try {
      await expect(plane.publishState()).rejects.toMatchObject({ code: 'CAMVEIL_E_STATE_UNSAFE' });
    } finally {
      fullState = state;
    }
  });

  it('an app that has not paired refuses to believe any reply', async () => {
    await expect(app.request('status', {}, { sign: false })).rejects.toMatchObject({ code: 'CAMVEIL_E_HUB_UNVERIFIED' });
  });

  it('pairs with the right code only, once, before it expires', async () => {
    const pairing = new Pairing(db);
    const { code } = pairing.createPairingCode(clock);
    // What the broker sees of pair requests: the label (a name a person chose) only sealed under the code.
    const watcher = await connect();
    const seen: Buffer[] = [];
    watcher.on('message', (_t, p) => seen.push(Buffer.from(p)));
    await watcher.subscribeAsync(`${plane.topics.request}/pair`, { qos: 1 });
    const wrong = await app.pair(code === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA', recipient, 'kitchen tablet');
    expect(wrong).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_PAIRING_FAILED' } });
    const right = await app.pair(code, recipient, 'kitchen tablet');
    expect(right).toMatchObject({ status: 'ok', data: { keyId: app.key.keyId } });
    // The hub's keys, proven with the code, are what the app now pins.
    expect(app.pinned).toEqual(keys.pinned);
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    const clear = Buffer.concat(seen.flatMap((b) => [b, Buffer.from((JSON.parse(b.toString()) as { payload: string }).payload, 'base64')]));
    expect(clear.includes(Buffer.from('sealedLabel'))).toBe(true);
    expect(clear.includes(Buffer.from('kitchen tablet'))).toBe(false);
    const other = await newApp();
    const reused = await other.pair(code, recipient);
    expect(reused).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_PAIRING_FAILED' } });

    const late = pairing.createPairingCode(clock);
    clock += 11 * MINUTE;
    try {
      const expired = await other.pair(late.code, recipient);
      expect(expired).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_PAIRING_FAILED' } });
      expect(expired.status === 'error' && expired.error.message).toMatch(/expired/);
    } finally {
      clock -= 11 * MINUTE;
    }
    // Five wrong proofs burn a code: guessing online is worth only that many tries.
    const burnt = pairing.createPairingCode(clock);
    const wrongCode = burnt.code === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA';
    for (let i = 0; i < 5; i++) expect(await other.pair(wrongCode, recipient)).toMatchObject({ status: 'error' });
    expect(await other.pair(burnt.code, recipient)).toMatchObject({ error: { code: 'CAMVEIL_E_PAIRING_FAILED', message: expect.stringMatching(/no active/) as string } });

    expect(registry.list().map((k) => k.keyId)).toEqual([app.key.keyId]);
    const paired = audit.entries().filter((e) => e.type === 'key.paired');
    expect(paired).toHaveLength(1);
    expect(paired[0]?.details).toMatchObject({ keyId: app.key.keyId });
  });

  it('answers status unsigned, signed by the hub, its result sealed: health and state open with the identity', async () => {
    const reply = await app.request('status', {}, { sign: false });
    expect(reply).toMatchObject({ status: 'ok', data: { health: { availability: 'online', protocol: 2 } } });
    expect((reply.data as { state: unknown }).state).toEqual(state);
    expect(typeof reply.transaction).toBe('string');
    // A phone whose identity is not a recipient gets a clear error, not garbage.
    const outsider = new AppClient({ client: await connect(), baseTopic: BASE, hubId, now, timeoutMs: 5_000, pinned: keys.pinned, identity: await generateX25519Identity() });
    await expect(outsider.request('status', {}, { sign: false })).rejects.toMatchObject({ code: 'CAMVEIL_E_REPLY_SEALED', message: expect.stringMatching(/not among its recipients/) as string });
    const none = new AppClient({ client: await connect(), baseTopic: BASE, hubId, now, timeoutMs: 5_000, pinned: keys.pinned });
    await expect(none.request('status', {}, { sign: false })).rejects.toMatchObject({ code: 'CAMVEIL_E_REPLY_SEALED', message: expect.stringMatching(/no age identity/) as string });
  });

  it('runs a widening command signed by a paired key, and refuses the same bytes replayed', async () => {
    const before = calls.widen;
    const prepared = await app.prepare('test/widen', { n: 7 }, { sign: true });
    const first = await app.send('test/widen', prepared.bytes, prepared.transaction);
    expect(first).toMatchObject({ status: 'ok', data: { n: 7 }, transaction: prepared.transaction });
    const replay = await app.send('test/widen', prepared.bytes, prepared.transaction);
    expect(replay).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REPLAY' }, transaction: prepared.transaction });
    expect(calls.widen).toBe(before + 1);
  });

  it('refuses a signed request republished on another command topic', async () => {
    const before = calls.narrow;
    const prepared = await app.prepare('test/widen', { n: 1 }, { sign: true });
    const reply = await app.send('test/narrow', prepared.bytes, prepared.transaction);
    expect(reply).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    expect(calls.narrow).toBe(before);
    // Not consumed: the same bytes on the right topic still run once.
    expect(await app.send('test/widen', prepared.bytes, prepared.transaction)).toMatchObject({ status: 'ok' });
  });

  it('refuses a request signed by an unknown key', async () => {
    const before = calls.widen;
    const stranger = new AppClient({ client: await connect(), baseTopic: BASE, hubId, now, key: generateAppKey(), pinned: keys.pinned });
    const reply = await stranger.request('test/widen', { n: 1 }, { sign: true });
    expect(reply).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_UNKNOWN_KEY' } });
    expect(calls.widen).toBe(before);
  });

  it('refuses an unsigned widening command from the broker operator without calling the handler', async () => {
    const before = calls.widen;
    const operator = await connect();
    const transaction = randomUUID();
    // Sealed to the hub, as the hub requires: its recipient is no secret (the broker sees it at pairing).
    const sealedArgs = (await encryptToBuffer([keys.hub.recipient], Buffer.from(JSON.stringify({ n: 666 })))).toString('base64');
    const payload = Buffer.from(JSON.stringify({ v: 2, hub: hubId, base: BASE, command: 'test/widen', transaction, seq: 1, ts: clock, sealedArgs }));
    const reply = nextMessage(operator, `${plane.topics.response}/test/widen`, (p) => openHubMessage(p, keys.pinned, 'response', clock).response.transaction === transaction);
    await operator.subscribeAsync(`${plane.topics.response}/test/widen`, { qos: 1 });
    await operator.publishAsync(`${plane.topics.request}/test/widen`, JSON.stringify({ payload: payload.toString('base64') }), { qos: 1 });
    expect(await replyOf(await reply, keys.pinned, clock, identity)).toEqual({
      data: {},
      status: 'error',
      error: { code: 'CAMVEIL_E_NOT_AUTHORISED', message: expect.any(String) as string },
      transaction,
    });
    expect(calls.widen).toBe(before);
  });

  it('runs a narrowing command unsigned', async () => {
    const before = calls.narrow;
    expect(await app.request('test/narrow', {}, { sign: false })).toMatchObject({ status: 'ok', data: { calls: before + 1 } });
  });

  it('adds, lists and revokes devices; a revoked key is refused', async () => {
    const second = await newApp();
    expect(await second.request('devices/add', { publicKey: second.key.publicKey, recipient }, { sign: false })).toMatchObject({
      status: 'error',
      error: { code: 'CAMVEIL_E_NOT_AUTHORISED' },
    });
    const added = await app.request('devices/add', { publicKey: second.key.publicKey, recipient, label: 'hall phone' }, { sign: true });
    expect(added).toMatchObject({ status: 'ok', data: { keyId: second.key.keyId } });
    expect(await second.request('test/widen', { n: 2 }, { sign: true })).toMatchObject({ status: 'ok' });

    const list = await second.request('devices/list', {}, { sign: false });
    expect(list.status).toBe('ok');
    // The labels travel in the sealed result (opened by the app client), not sealed a second time inside it.
    const data = list.data as { devices: Array<{ keyId: string; label?: string }> };
    expect(data.devices.map((d) => d.keyId).sort()).toEqual([app.key.keyId, second.key.keyId].sort());
    expect(Object.fromEntries(data.devices.map((d) => [d.keyId, d.label]))).toEqual({ [app.key.keyId]: 'kitchen tablet', [second.key.keyId]: 'hall phone' });

    const revoked = await app.request('devices/revoke', { keyId: second.key.keyId }, { sign: true });
    expect(revoked).toMatchObject({ status: 'ok', data: { keyId: second.key.keyId } });
    expect(await second.request('test/widen', { n: 3 }, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_UNKNOWN_KEY' } });
    expect(audit.entries().filter((e) => e.type === 'key.revoked').map((e) => e.details)).toEqual([
      expect.objectContaining({ keyId: second.key.keyId, reason: 'user.revoked' }),
    ]);
    expect(audit.verify().ok).toBe(true);
  });

  it('publishes sealed events the household identity decrypts', async () => {
    const follower = await newApp();
    const events: unknown[] = [];
    const unfollow = await follower.followEvents(identity, (e) => events.push(e));
    await plane.publishEvent({ type: 'motion', camera: 'cam_aaaaaaaaaaaaaaaa' });
    await plane.publishEvent({ type: 'cover', at: clock });
    await plane.publishEvent({ type: 'known-face', camera: 'cam_aaaaaaaaaaaaaaaa', person: 'per_x', sighting: 'sgt_y' });
    await expect.poll(() => events, { timeout: 5_000 }).toEqual([
      { type: 'motion', camera: 'cam_aaaaaaaaaaaaaaaa' },
      { type: 'known-face', camera: 'cam_aaaaaaaaaaaaaaaa', person: 'per_x', sighting: 'sgt_y' },
    ]);
    await unfollow();
  });

  it('shows offline after stop, keeps replay protection across a restart, and leaves offline as last will', async () => {
    const watcher = await connect();
    const accepted = await app.prepare('test/widen', { n: 9 }, { sign: true });
    expect(await app.send('test/widen', accepted.bytes, accepted.transaction)).toMatchObject({ status: 'ok' });
    const offline = nextMessage(watcher, plane.topics.availability, (p) => p.toString() === 'offline');
    await plane.stop();
    expect((await offline).toString()).toBe('offline');

    // A new process: new client, registry reopened on the same database; the old bytes stay refused.
    const client2 = await connect(connectOptions(BASE, hubId));
    registry = new KeyRegistry(db);
    plane = makePlane(client2);
    const online = nextMessage(watcher, plane.topics.availability, (p) => p.toString() === 'online');
    await plane.start();
    await online;
    expect(await app.send('test/widen', accepted.bytes, accepted.transaction)).toMatchObject({ error: { code: 'CAMVEIL_E_REPLAY' } });
    expect(await app.request('test/widen', { n: 10 }, { sign: true })).toMatchObject({ status: 'ok' });

    const will = nextMessage(watcher, plane.topics.availability, (p) => p.toString() === 'offline');
    client2.stream.destroy(); // dies without DISCONNECT: the broker publishes the last will
    expect((await will).toString()).toBe('offline');
  });
}

describe('control plane over aedes', () => controlPlaneSuite('aedes'));
describeWithPeers(['mosquitto'], 'control plane over mosquitto', () => controlPlaneSuite('mosquitto'));
