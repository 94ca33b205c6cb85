import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrolmentStore } from '../../src/analysis/faces/enrolment.js';
import { newSightingId } from '../../src/analysis/faces/sightings.js';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { faceCommands } from '../../src/control/face-commands.js';
import { IncidentMonitor } from '../../src/control/incident-monitor.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { connectOptions } from '../../src/control/topics.js';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { EventBus, type CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { testHub } from '../unit/face-fixtures.js';

/**
 * `store-corrupt` is sent, not only documented: (1) when a signed command meets stored data that fails its
 * integrity check at run time (a sighting that no longer opens with the hub key), over a real broker and the
 * real control plane; (2) when the hub starts and objects its index lists are gone from disk.
 */
describe('store-corrupt incidents', () => {
  let root: string;
  let household: string;
  /** The household identity, which the phone holds: the hub seals its replies to it. */
  let householdIdentity: string;
  let broker: EmbeddedBroker;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-store-corrupt-'));
    householdIdentity = await generateX25519Identity();
    household = await identityToRecipient(householdIdentity);
    broker = await startEmbeddedBroker();
  });

  afterAll(async () => {
    await broker?.close();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('the monitor makes CAMVEIL_E_STORE_CORRUPT an incident at once, and leaves other refusals alone', () => {
    const bus = new EventBus();
    const seen: Array<CamveilEvents['incident']> = [];
    bus.on('incident', (e) => seen.push(e));
    const monitor = new IncidentMonitor({ bus });
    monitor.refused('CAMVEIL_E_REQUEST_INVALID');
    monitor.refused('CAMVEIL_E_PERSON_NOT_FOUND');
    expect(seen).toEqual([]);
    monitor.refused('CAMVEIL_E_STORE_CORRUPT');
    expect(seen.map((e) => e.reason)).toEqual(['store-corrupt']);
  });

  it('a sighting that no longer opens with the hub key: faces/sightings is refused and the incident raised', async () => {
    const hubId = 'corrupt-sighting-hub';
    const hub = testHub();
    const clients: MqttClient[] = [];
    let control: ControlPlane | undefined;
    let app: AppClient | undefined;
    try {
      hub.acceptAndGrant();
      const keys = await loadOrCreateHubKeys(hub.dataDir);
      const store = new EnrolmentStore({ db: hub.db, hub: keys, audit: hub.audit, policyVersion: hub.policyVersion, ledger: hub.ledger });
      const sightingId = newSightingId();
      await store.sightings.record({ sightingId, cameraId: 'front', at: Date.now(), label: 'unknown', descriptor: new Float32Array(128) });
      // The row is resealed to a key that is not the hub's: it is age, but no longer the hub's own.
      const stranger = await identityToRecipient(await generateX25519Identity());
      hub.db.prepare('UPDATE faces_sightings SET sealed = ? WHERE sighting_id = ?').run(await encryptToBuffer([stranger], Buffer.from('{}')), sightingId);

      const bus = new EventBus();
      const incidents: Array<CamveilEvents['incident']> = [];
      bus.on('incident', (e) => incidents.push(e));
      const monitor = new IncidentMonitor({ bus });
      const hubMqtt = await mqtt.connectAsync(broker.url, connectOptions('camveil', hubId));
      clients.push(hubMqtt);
      const registry = new KeyRegistry(hub.db);
      // A variable, not a literal: the hub's identity is passed whether or not this version of faceCommands asks for it.
      const faceDeps = { people: () => store, hubIdentity: keys.identity, registry, mayEnrol: () => ({ allowed: true, reason: 'ok' }), hubId };
      control = new ControlPlane({
        client: hubMqtt,
        baseTopic: 'camveil',
        hubId,
        registry,
        audit: hub.audit,
        logger: silentLogger(),
        // The hub's keys as loaded (whatever of them the control plane needs).
        hub: keys,
        handlers: faceCommands(faceDeps),
        onRefused: (code) => monitor.refused(code),
      });
      await control.start();
      const appMqtt = await mqtt.connectAsync(broker.url);
      clients.push(appMqtt);
      app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId, timeoutMs: 30_000, identity: householdIdentity, pinned: { hubId, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
      registry.add({ publicKey: app.key.publicKey, recipient: household, label: 'phone' }, Date.now());
      const r = await app.request('faces/sightings', {}, { sign: true });
      expect(r).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_STORE_CORRUPT' } });
      expect(incidents.map((e) => e.reason)).toEqual(['store-corrupt']);
    } finally {
      await app?.stop();
      await control?.stop();
      for (const c of clients) await c.endAsync();
      hub.close();
    }
  }, 60_000);

  it('objects the index lists but the disk lost: the hub starts, drops their rows, raises and audits the incident', async () => {
    const hubId = 'missing-objects-hub';
    const dataDir = join(root, hubId);
    const config = validateConfig({ hub: { id: hubId, region: 'DE' }, dataDir, household: { recipients: [household] } }, 'test', root);
    // A first run's store: three sealed objects, indexed.
    const db = openDatabase(dataDir);
    const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
    for (let i = 0; i < 3; i++) {
      const body = await encryptToBuffer([household], Buffer.from(`clip ${i}`));
      await store.put({ objectId: newObjectId(), kind: 'clip', cameraId: 'front', capturedAt: Date.now(), body: Readable.from([body]) });
    }
    db.close();
    // Someone (or a failing disk) removes two of the files behind the hub's back.
    const files = readdirSync(join(dataDir, 'objects')).filter((f) => f.endsWith('.age'));
    expect(files).toHaveLength(3);
    for (const f of files.slice(0, 2)) rmSync(join(dataDir, 'objects', f));

    const gateway = new Gateway({ config, logger: createLogger({ level: 'silent' }) });
    const incidents: Array<CamveilEvents['incident']> = [];
    gateway.bus.on('incident', (e) => incidents.push(e));
    try {
      await gateway.start();
      expect(incidents).toEqual([{ reason: 'store-corrupt', detail: '2 stored object(s) the index lists were missing from disk; their index rows were dropped' }]);
      expect(gateway.state().storage?.objects).toBe(1);
    } finally {
      await gateway.stop();
    }
    const check = new Database(join(dataDir, 'camveil.db'), { readonly: true });
    try {
      const audited = (check.prepare("SELECT record FROM audit WHERE type = 'incident'").all() as Array<{ record: string }>).map((r) => (JSON.parse(r.record) as { details: object }).details);
      expect(audited).toEqual([{ reason: 'store-corrupt' }]);
    } finally {
      check.close();
    }
  }, 60_000);
});
