import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrolmentStore } from '../../src/analysis/faces/enrolment.js';
import { FaceEngine } from '../../src/analysis/faces/face-engine.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { AppClient } from '../../src/control/app-client.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { faceCommands } from '../../src/control/face-commands.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { connectOptions } from '../../src/control/topics.js';
import { loadOrCreateHubKeys, type HubKeys } from '../../src/crypto/hub-keys.js';
import { silentLogger } from '../../src/log.js';
import { LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { cropOf, DEMO, testHub } from '../unit/face-fixtures.js';

const HUB = 'delete-actor-hub';

/**
 * `faces/delete` over a real broker (aedes), the real control plane and enrolment store on SQLite: the
 * ledger's unenrol record and the audit log name the paired key that signed the deletion, not the hub's
 * console (`local-operator`), for one person and for `{all: true}`.
 */
describe('faces/delete over MQTT records the signing key as the actor', () => {
  let dir: string;
  let hub: ReturnType<typeof testHub>;
  let keys: HubKeys;
  let store: EnrolmentStore;
  let engine: FaceEngine;
  let broker: EmbeddedBroker;
  let hubMqtt: MqttClient;
  let appMqtt: MqttClient;
  let control: ControlPlane;
  let app: AppClient;
  let crop: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camveil-delete-actor-'));
    engine = await FaceEngine.open();
    const faces = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
    crop = join(dir, 'person.jpg');
    await cropOf(faces[0]!, crop);
    hub = testHub();
    hub.acceptAndGrant();
    keys = await loadOrCreateHubKeys(hub.dataDir);
    store = new EnrolmentStore({ db: hub.db, hub: keys, audit: hub.audit, policyVersion: hub.policyVersion, ledger: hub.ledger });
    broker = await startEmbeddedBroker();
    hubMqtt = await mqtt.connectAsync(broker.url, connectOptions('camveil', HUB));
    const registry = new KeyRegistry(hub.db);
    // A variable, not a literal: the hub's identity is passed whether or not this version of faceCommands asks for it.
    const faceDeps = { people: () => store, hubIdentity: keys.identity, registry, mayEnrol: () => ({ allowed: true, reason: 'ok' }), hubId: HUB };
    control = new ControlPlane({
      client: hubMqtt,
      baseTopic: 'camveil',
      hubId: HUB,
      registry,
      audit: hub.audit,
      logger: silentLogger(),
      // The hub's keys as loaded (whatever of them the control plane needs).
      hub: keys,
      handlers: faceCommands(faceDeps),
    });
    await control.start();
    appMqtt = await mqtt.connectAsync(broker.url);
    // The phone's identity: the hub seals its replies to the paired phones.
    const phone = await generateX25519Identity();
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: HUB, timeoutMs: 30_000, identity: phone, pinned: { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
    registry.add({ publicKey: app.key.publicKey, recipient: await identityToRecipient(phone), label: 'phone' }, Date.now());
    await app.start();
  }, 120_000);

  afterAll(async () => {
    engine?.unload();
    await app?.stop();
    await appMqtt?.endAsync();
    await control?.stop();
    await hubMqtt?.endAsync();
    await broker?.close();
    hub?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const enrol = async (name: string) => (await store.enrol(engine, { name, photos: [crop], minor: false })).personId;
  const unenrolRecords = () => hub.ledger.records().filter((r) => r.kind === 'unenrol');
  const unenrolAudits = () => hub.audit.entries({ limit: 10_000 }).filter((e) => e.type === 'consent.changed' && (e.details as { state?: string }).state === 'unenrolled');

  it('one person: the unenrol record and its audit entry name the signing key', async () => {
    const personId = await enrol('Ann');
    const r = await app.request('faces/delete', { personId }, { sign: true });
    expect(r).toMatchObject({ status: 'ok', data: { deleted: 1 } });
    expect(store.ids()).not.toContain(personId);
    const record = unenrolRecords().find((x) => x.subject === personId);
    expect(record?.actor).toBe(app.key.keyId);
    expect(record?.actor).not.toBe(LOCAL_OPERATOR);
    const audited = unenrolAudits().find((e) => (e.details as { subject?: string }).subject === personId);
    expect(audited?.details).toMatchObject({ keyId: app.key.keyId });
    expect((audited?.details as { requestDigest?: string }).requestDigest).toMatch(/^[0-9a-f]{64}$/);
  }, 60_000);

  it('{all: true}: every unenrol record names the signing key', async () => {
    const ids = [await enrol('Bo'), await enrol('Cy')];
    const r = await app.request('faces/delete', { all: true }, { sign: true });
    expect(r).toMatchObject({ status: 'ok', data: { deleted: 2 } });
    expect(store.count()).toBe(0);
    for (const id of ids) {
      expect(unenrolRecords().find((x) => x.subject === id)?.actor, id).toBe(app.key.keyId);
      expect(unenrolAudits().find((e) => (e.details as { subject?: string }).subject === id)?.details, id).toMatchObject({ keyId: app.key.keyId });
    }
  }, 60_000);

  it('at the console (no origin) the actor stays local-operator', async () => {
    const personId = await enrol('Di');
    store.delete(personId);
    expect(unenrolRecords().find((x) => x.subject === personId)?.actor).toBe(LOCAL_OPERATOR);
  }, 60_000);
});
