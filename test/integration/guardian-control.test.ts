import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrolmentStore } from '../../src/analysis/faces/enrolment.js';
import { FaceEngine } from '../../src/analysis/faces/face-engine.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { runApp } from '../../src/commands/app.js';
import { AppClient } from '../../src/control/app-client.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { faceCommands } from '../../src/control/face-commands.js';
import { enrolmentSubject, GUARDIAN_FRESHNESS_MS, signGuardianAttestation } from '../../src/control/guardian-attestation.js';
import { keyIdOf, KeyRegistry } from '../../src/control/key-registry.js';
import { connectOptions } from '../../src/control/topics.js';
import { loadOrCreateHubKeys, type HubKeys } from '../../src/crypto/hub-keys.js';
import { silentLogger } from '../../src/log.js';
import { LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { cropOf, DEMO, testHub } from '../unit/face-fixtures.js';

const HUB = 'guardian-hub';

/**
 * A minor's enrolment over a real broker (aedes), the real control plane and the real enrolment store on
 * SQLite: the guardian's consent is a signature by a paired key, for this hub and this person, fresh.
 * Forged attestations are refused and nothing is enrolled; a real one enrols and the ledger names the signer.
 */
describe('guardian consent over MQTT', () => {
  let dir: string;
  let hub: ReturnType<typeof testHub>;
  let keys: HubKeys;
  let store: EnrolmentStore;
  let broker: EmbeddedBroker;
  let hubMqtt: MqttClient;
  let appMqtt: MqttClient;
  let control: ControlPlane;
  let app: AppClient;
  let registry: KeyRegistry;
  let stateFile: string;
  let phoneIdentityFile: string;
  let crop: string;
  let photo: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camveil-guardian-mqtt-'));
    const engine = await FaceEngine.open();
    try {
      const faces = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
      crop = join(dir, 'kid.jpg');
      await cropOf(faces[0]!, crop);
    } finally {
      engine.unload();
    }
    photo = readFileSync(crop).toString('base64');
    hub = testHub();
    hub.acceptAndGrant();
    keys = await loadOrCreateHubKeys(hub.dataDir);
    store = new EnrolmentStore({ db: hub.db, hub: keys, audit: hub.audit, policyVersion: hub.policyVersion, ledger: hub.ledger });
    broker = await startEmbeddedBroker();
    hubMqtt = await mqtt.connectAsync(broker.url, connectOptions('camveil', HUB));
    registry = new KeyRegistry(hub.db);
    control = new ControlPlane({
      client: hubMqtt,
      baseTopic: 'camveil',
      hubId: HUB,
      registry,
      audit: hub.audit,
      logger: silentLogger(),
      hub: keys,
      handlers: faceCommands({ people: () => store, registry, mayEnrol: () => ({ allowed: true, reason: 'ok' }), hubId: HUB }),
    });
    await control.start();
    stateFile = join(dir, 'app-state.json');
    appMqtt = await mqtt.connectAsync(broker.url);
    // The phone's identity: the hub seals its replies to the paired phones.
    const phone = await generateX25519Identity();
    phoneIdentityFile = join(dir, 'phone.key');
    writeFileSync(phoneIdentityFile, `${phone}\n`, { mode: 0o600 });
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: HUB, timeoutMs: 20_000, stateFile, identity: phone, pinned: { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
    registry.add({ publicKey: app.key.publicKey, recipient: await identityToRecipient(phone), label: 'parent phone' }, Date.now());
    await app.start();
  });

  afterAll(async () => {
    await app?.stop();
    await appMqtt?.endAsync();
    await control?.stop();
    await hubMqtt?.endAsync();
    await broker?.close();
    hub?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const enrolRequest = async (guardianAttestation: unknown, name = 'Kid') => {
    const payload = { name, minor: true, photos: [photo], ...(guardianAttestation === undefined ? {} : { guardianAttestation }) };
    return app.request('faces/enrol', payload, { sign: true });
  };
  const enrolRecords = () => hub.ledger.records().filter((r) => r.kind === 'enrol');

  it('refuses forged guardians and enrols nobody', async () => {
    const subject = enrolmentSubject('Kid', [photo]);
    const stranger = generateKeyPairSync('ed25519').privateKey;
    const strangerRaw = Buffer.from(createPublicKey(stranger).export({ format: 'jwk' }).x!, 'base64url');
    const strangerKey = { privateKey: stranger, keyId: keyIdOf(strangerRaw) };
    const forged: Array<[string, unknown]> = [
      ['no attestation', undefined],
      ['a string guardian', { guardianKeyId: 'nobody-at-all', statement: 'I am the parent.', at: new Date().toISOString() }],
      ['an unpaired key', signGuardianAttestation(strangerKey, { hubId: HUB, subject })],
      ['a wrong signature', { ...signGuardianAttestation(strangerKey, { hubId: HUB, subject }), guardianKeyId: app.key.keyId }],
      ['a stale attestation', signGuardianAttestation(app.key, { hubId: HUB, subject, at: new Date(Date.now() - GUARDIAN_FRESHNESS_MS - 60_000) })],
      ['an attestation for another hub', signGuardianAttestation(app.key, { hubId: 'another-hub', subject })],
      ['an attestation for another person', signGuardianAttestation(app.key, { hubId: HUB, subject: enrolmentSubject('Someone else', [photo]) })],
    ];
    for (const [what, attestation] of forged) {
      const r = await enrolRequest(attestation);
      expect(r, what).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED' } });
    }
    expect(store.count()).toBe(0);
    expect(enrolRecords()).toEqual([]);
  });

  it('camveil app faces enrol --minor signs the attestation with the app key; the ledger names the signer, not the console', async () => {
    const out: string[] = [];
    const code = await runApp({ kind: 'faces-enrol', name: 'Kid', photos: [crop], minor: true }, { broker: broker.url, hub: HUB, state: stateFile, identity: phoneIdentityFile }, { stdout: (t) => out.push(t), stderr: (t) => out.push(t) });
    expect(code, out.join('\n')).toBe(0);
    expect(store.count()).toBe(1);
    const [record] = enrolRecords();
    expect(record).toMatchObject({ kind: 'enrol', minor: true, actor: app.key.keyId, guardian: { guardianKeyId: app.key.keyId } });
    expect(record?.actor).not.toBe(LOCAL_OPERATOR);
    const audited = hub.audit.entries().filter((e) => e.type === 'consent.changed').at(-1);
    expect(audited?.details).toMatchObject({ state: 'enrolled', minor: true, keyId: app.key.keyId });
  });
});
