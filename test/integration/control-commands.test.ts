import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MIN_SCORE } from '../../src/analysis/objects/object-classes.js';
import { chainHash, GENESIS_HASH } from '../../src/audit/audit-log.js';
import { canonicalJson } from '../../src/audit/canonical.js';
import { openHubContext, type HubContext } from '../../src/commands/hub-context.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { AppClient } from '../../src/control/app-client.js';
import type { ControlResponse } from '../../src/control/command.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { hubCommands } from '../../src/control/hub-commands.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { applySettingsPatch, cameraSummaries, settingsOf, type HubSettings } from '../../src/control/settings.js';
import { connectOptions } from '../../src/control/topics.js';
import { decryptToBuffer, encryptStream } from '../../src/crypto/age-stream.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { exportHouseholdData } from '../../src/rights/data-rights.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { waitFor } from '../harness/wait.js';
import { testHubKeys } from '../harness/hub-keys.js';

const HUB = 'cmd-hub';
const ZONE: Array<[number, number]> = [
  [0, 0],
  [0.5, 0],
  [0.5, 0.5],
];

type Ok = Extract<ControlResponse, { status: 'ok' }>;

function ok(r: ControlResponse): Ok['data'] {
  if (r.status !== 'ok') throw new Error(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r.data;
}

/**
 * The new commands end to end: a running gateway on the hub's data directory, and a control plane with
 * every hub command wired as the gateway wires them (over an embedded broker, on the same database, as a
 * second connection — what `camveil` CLI commands do too). The app signs with a paired key.
 */
describe('control commands: cameras, settings and data rights over MQTT', () => {
  let root: string;
  let identity: string;
  let gateway: Gateway;
  let hub: HubContext;
  let store: ObjectStore;
  let config: Config;
  let broker: EmbeddedBroker;
  let hubMqtt: MqttClient;
  let appMqtt: MqttClient;
  let control: ControlPlane;
  let app: AppClient;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-cmds-'));
    identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const raw = {
      hub: { id: HUB, region: 'DE' },
      dataDir: path.join(root, 'hub'),
      household: { recipients: [recipient] },
      // Disabled: listed and configurable, but no ffmpeg is started for it.
      cameras: [{ id: 'porch', name: 'Porch', enabled: false, source: 'rtsp://192.0.2.10/videoMain', motion: { zones: [ZONE] } }],
    };
    const configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();

    hub = await openHubContext(configFile);
    config = hub.config;
    store = ObjectStore.open({ db: hub.db, dataDir: config.dataDir, logger: silentLogger() });
    const actor = { actor: 'local-operator', requestDigest: 'a'.repeat(64) };
    await hub.consent.acceptPolicy('2021-10-31', actor);
    await hub.consent.grant('localRecording', actor);
    await hub.consent.grant('cloudUpload', actor);
    for (let i = 0; i < 3; i += 1) {
      await store.put({ objectId: newObjectId(), kind: 'clip', cameraId: 'porch', capturedAt: Date.now(), body: encryptStream([recipient], Buffer.from(`clip ${i}`)) });
    }
    store.recordEvent({ eventId: 'evt_test1', cameraId: 'porch', kind: 'motion', startedAt: Date.now() - 1000, endedAt: Date.now() });
    await waitFor('the gateway to see the grants', () => gateway.state().mode.mode === 'cloud', 5000);

    broker = await startEmbeddedBroker();
    hubMqtt = await mqtt.connectAsync(broker.url, connectOptions('camveil', HUB));
    const registry = new KeyRegistry(hub.db);
    const hubKeys = await testHubKeys(HUB);
    control = new ControlPlane({
      hub: hubKeys.hub,
      client: hubMqtt,
      baseTopic: 'camveil',
      hubId: HUB,
      registry,
      audit: hub.audit,
      logger: silentLogger(),
      getState: () => gateway.state(),
      handlers: hubCommands({
        consent: hub.consent,
        policyInForce: config.privacy.policyVersion,
        cameras: () => cameraSummaries(config.cameras, gateway.state().cameras, hub.gate),
        getConfig: () => settingsOf(config),
        applyConfig: (patch) => {
          config = applySettingsPatch(config, patch);
          return settingsOf(config);
        },
        dataRights: () => ({ db: hub.db, config, audit: hub.audit, ledger: hub.ledger, pseudonymise: hub.pseudonymise, store }),
      }),
    });
    await control.start();
    appMqtt = await mqtt.connectAsync(broker.url);
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: HUB, timeoutMs: 10_000, pinned: hubKeys.pinned, identity });
    registry.add({ publicKey: app.key.publicKey, recipient, label: 'test phone' }, Date.now());
    await app.start();
  });

  afterAll(async () => {
    await app?.stop();
    await appMqtt?.endAsync();
    await control?.stop();
    await hubMqtt?.endAsync();
    await broker?.close();
    hub?.close();
    await gateway?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('cameras/list: ids, names, health and what the gate allows, unsigned; bad args refused', async () => {
    const data = ok(await app.request('cameras/list', {}, { sign: false })) as { cameras: Array<Record<string, unknown>> };
    expect(data.cameras).toEqual([
      {
        id: 'porch',
        name: 'Porch',
        enabled: false,
        health: 'stopped',
        features: {
          motion: { enabled: true, active: false },
          faceRecognition: { enabled: false, allowed: false, reason: 'off' },
          localRecording: { allowed: true, reason: expect.any(String) as string },
        },
      },
    ]);
    expect(JSON.stringify(data)).not.toMatch(/192\.0\.2\.10|rtsp|videoMain/);
    expect(await app.request('cameras/list', { all: true }, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
  });

  it('config/get: the non-secret settings, unsigned; bad args refused', async () => {
    expect(ok(await app.request('config/get', {}, { sign: false }))).toEqual({
      cameras: [
        {
          id: 'porch',
          analysisFps: 2,
          motion: { sensitivity: 0.5, zones: [ZONE] },
          privacyMasks: [],
          objects: { enabled: true, track: ['person', 'vehicle', 'animal'], minScore: DEFAULT_MIN_SCORE, minArea: 0.0005 },
          alerts: { onlyFor: [] },
        },
      ],
      retentionDays: 30,
    });
    expect(await app.request('config/get', { secrets: true }, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
  });

  it('config/set: unsigned refused and nothing changes', async () => {
    const before = settingsOf(config);
    const r = await app.request('config/set', { cameras: [{ id: 'porch', privacyMasks: [] }], retentionDays: 3650 }, { sign: false });
    expect(r).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(settingsOf(config)).toEqual(before);
  });

  it('config/set: signed but invalid (unknown key, out of bounds, bad polygon, unknown camera, secrets) refused, nothing changes', async () => {
    const before = settingsOf(config);
    const bad: unknown[] = [
      { cameras: [{ id: 'porch', sensitivity: 2 }] },
      { cameras: [{ id: 'porch', zones: [[[0, 0], [1, 1]]] }] },
      { cameras: [{ id: 'porch', faceRecognition: true }] },
      { cameras: [{ id: 'porch', credentials: { username: 'admin', passwordFile: '/etc/passwd' } }] },
      { uplink: { enabled: true } },
      { retentionDays: 0 },
      {},
      { cameras: [{ id: 'garage', sensitivity: 0.2 }] },
      { cameras: [{ id: 'porch', objects: { track: ['unicorn'] } }] },
      { cameras: [{ id: 'porch', objects: { track: [] } }] },
      { cameras: [{ id: 'porch', objects: { zones: {} } }] },
      { cameras: [{ id: 'porch', alertsOnlyFor: ['person'], objects: { enabled: false } }] },
      { cameras: [{ id: 'porch', alertsOnlyFor: ['vehicle'], objects: { track: ['person'] } }] },
    ];
    for (const args of bad) {
      const r = await app.request('config/set', args, { sign: true });
      expect(r, JSON.stringify(args)).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    }
    expect(settingsOf(config)).toEqual(before);
  });

  it('config/set: signed, applies zones, masks, sensitivity, fps and retention (the reply does not echo them)', async () => {
    const mask: Array<[number, number]> = [
      [0.6, 0.6],
      [1, 0.6],
      [1, 1],
    ];
    const patch = { cameras: [{ id: 'porch', sensitivity: 0.3, analysisFps: 1, zones: [], privacyMasks: [mask] }], retentionDays: 7 };
    const objects = { enabled: true, track: ['person', 'vehicle', 'animal'], minScore: DEFAULT_MIN_SCORE, minArea: 0.0005 };
    const expected = {
      cameras: [{ id: 'porch', analysisFps: 1, motion: { sensitivity: 0.3, zones: [] }, privacyMasks: [mask], objects, alerts: { onlyFor: [] } }],
      retentionDays: 7,
    };
    expect(ok(await app.request('config/set', patch, { sign: true }))).toEqual({ applied: true });
    expect(ok(await app.request('config/get', {}, { sign: false }))).toEqual(expected);
    expect(config.cameras[0]?.source).toBe('rtsp://192.0.2.10/videoMain');
  });

  it('config/set: signed, sets what objects are tracked and which labels alert, checked as the config file is', async () => {
    const patch = { cameras: [{ id: 'porch', objects: { track: ['person', 'car'], minScore: 0.5, minArea: 0.001 }, alertsOnlyFor: ['person'] }] };
    expect(ok(await app.request('config/set', patch, { sign: true }))).toEqual({ applied: true });
    const porch = (ok(await app.request('config/get', {}, { sign: false })) as HubSettings).cameras[0];
    expect(porch?.objects).toEqual({ enabled: true, track: ['person', 'car'], minScore: 0.5, minArea: 0.001 });
    expect(porch?.alerts).toEqual({ onlyFor: ['person'] });
    expect(config.cameras[0]?.objects.track).toEqual(['person', 'car']);
    expect(config.cameras[0]?.alerts.onlyFor).toEqual(['person']);
    // Switching objects off while alerts are narrowed to a label would silence the camera: refused together.
    const off = await app.request('config/set', { cameras: [{ id: 'porch', objects: { enabled: false } }] }, { sign: true });
    expect(off).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID', message: expect.stringMatching(/porch: alertsOnlyFor: needs objects.enabled/) as string } });
    expect(ok(await app.request('config/set', { cameras: [{ id: 'porch', objects: { enabled: false }, alertsOnlyFor: [] }] }, { sign: true }))).toEqual({ applied: true });
    expect(config.cameras[0]?.objects.enabled).toBe(false);
  });

  it('data/export: unsigned refused; signed returns an age export only the household identity opens', async () => {
    expect(await app.request('data/export', {}, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(await app.request('data/export', { to: 'me' }, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    const data = ok(await app.request('data/export', {}, { sign: true })) as { sealed: string; bytes: number };
    const sealed = Buffer.from(data.sealed, 'base64');
    expect(sealed.length).toBe(data.bytes);
    expect(sealed.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    const lines = (await decryptToBuffer(identity, sealed)).toString().trim().split('\n').map((l) => JSON.parse(l) as { section: string });
    expect(new Set(lines.map((l) => l.section))).toEqual(new Set(['export', 'consent', 'event', 'object', 'audit']));
    expect(lines.filter((l) => l.section === 'object')).toHaveLength(3);
    const last = hub.audit.entries({ limit: 10_000 }).at(-1);
    expect(last).toMatchObject({ type: 'export', details: { scope: 'household', keyId: app.key.keyId } });
  });

  it('data/export: an export over the cap is refused with CAMVEIL_E_REPLY_TOO_LARGE and not recorded', async () => {
    const before = hub.audit.head();
    await expect(exportHouseholdData({ db: hub.db, config, audit: hub.audit, ledger: hub.ledger, pseudonymise: hub.pseudonymise, store }, { maxBytes: 256 })).rejects.toMatchObject({
      code: 'CAMVEIL_E_REPLY_TOO_LARGE',
    });
    expect(hub.audit.head()).toEqual(before);
  });

  it('audit/export: unsigned refused; signed returns the whole chain, which the household identity decrypts and verifies', async () => {
    expect(await app.request('audit/export', {}, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(await app.request('audit/export', { since: 1 }, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    const count = hub.audit.entries({ limit: 10_000 }).length;
    const data = ok(await app.request('audit/export', {}, { sign: true })) as { sealed: string };
    const text = (await decryptToBuffer(identity, Buffer.from(data.sealed, 'base64'))).toString();
    const entries = text.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; at: string; type: string; details: unknown; prevHash: string; hash: string });
    expect(entries).toHaveLength(count);
    let prev = GENESIS_HASH;
    for (const e of entries) {
      expect(e.prevHash).toBe(prev);
      expect(chainHash(prev, canonicalJson({ seq: e.seq, at: e.at, type: e.type, details: e.details }))).toBe(e.hash);
      prev = e.hash;
    }
    expect(hub.audit.entries({ limit: 10_000 }).at(-1)).toMatchObject({ type: 'export', details: { scope: 'audit', count } });
  });

  it('data/delete: unsigned or unconfirmed refused and nothing is deleted', async () => {
    expect(await app.request('data/delete', { confirm: 'delete-all' }, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(await app.request('data/delete', {}, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    expect(await app.request('data/delete', { confirm: 'yes' }, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    expect(store.count()).toBe(3);
    expect(hub.ledger.records()).toHaveLength(3);
    expect(gateway.state().mode.mode).toBe('cloud');
  });

  it('data/delete: signed returns the counts; the store and the ledger are empty and the hub is local-only', async () => {
    const data = ok(await app.request('data/delete', { confirm: 'delete-all' }, { sign: true }));
    expect(data).toEqual({
      deleted: { objects: 3, people: 0, events: 1, consentRecords: 3, queuedUploads: 0, cloud: { sent: 0, pending: 0 } },
      mode: { mode: 'local-only', reason: expect.any(String) as string },
    });
    expect(store.count()).toBe(0);
    expect(store.listEvents()).toEqual([]);
    expect(readdirSync(path.join(root, 'hub', 'objects'))).toEqual([]);
    expect(hub.ledger.records()).toEqual([]);
    // The running gateway sees the erased ledger through SQLite and stops uploading.
    await waitFor('the gateway to go local-only', () => gateway.state().mode.mode === 'local-only', 5000);
    expect(gateway.state().storage?.objects).toBe(0);
    // The gateway records its own mode change after it: look for the deletion record itself.
    expect(hub.audit.entries({ limit: 10_000 }).find((e) => e.type === 'deletion')).toMatchObject({
      type: 'deletion',
      details: { scope: 'all', count: 7, reason: 'data-subject-request', keyId: app.key.keyId },
    });
    expect(hub.audit.verify().ok).toBe(true);
  });
});
