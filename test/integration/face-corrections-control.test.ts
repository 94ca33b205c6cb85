import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrolmentStore } from '../../src/analysis/faces/enrolment.js';
import { FaceEngine } from '../../src/analysis/faces/face-engine.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { newSightingId } from '../../src/analysis/faces/sightings.js';
import { runApp } from '../../src/commands/app.js';
import type { CommandIO } from '../../src/commands/io.js';
import { AppClient } from '../../src/control/app-client.js';
import type { ControlResponse } from '../../src/control/command.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { faceCommands } from '../../src/control/face-commands.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { connectOptions } from '../../src/control/topics.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { silentLogger } from '../../src/log.js';
import { cropOf, DEMO, testHub } from '../unit/face-fixtures.js';

const HUB = 'faces-hub';

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
}

function ok(r: ControlResponse): Record<string, unknown> {
  if (r.status !== 'ok') throw new Error(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r.data as Record<string, unknown>;
}

/**
 * Corrections, added photos and sightings over a real broker (aedes), the real control plane and the
 * real enrolment store on SQLite; the phone side is AppClient and the `camveil app` command.
 */
describe('faces/correct, faces/add-photos, faces/sightings over MQTT', () => {
  let dir: string;
  let hub: ReturnType<typeof testHub>;
  let store: EnrolmentStore;
  let broker: EmbeddedBroker;
  let hubMqtt: MqttClient;
  let appMqtt: MqttClient;
  let control: ControlPlane;
  let app: AppClient;
  let registry: KeyRegistry;
  let identity: string;
  let identityFile: string;
  let stateFile: string;
  let crop: string;
  let crop2: string;
  let personId: string;
  let stranger: string;
  const sightingDescriptor = Float32Array.from({ length: 128 }, (_, i) => Math.cos(i) / 10);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camveil-faces-mqtt-'));
    const engine = await FaceEngine.open();
    try {
      const faces = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
      crop = join(dir, 'a.jpg');
      crop2 = join(dir, 'a2.jpg');
      await cropOf(faces[0]!, crop);
      await cropOf(faces[0]!, crop2, 0.3);
      hub = testHub();
      hub.acceptAndGrant();
      const keys = await loadOrCreateHubKeys(hub.dataDir);
      store = new EnrolmentStore({ db: hub.db, hub: keys, audit: hub.audit, policyVersion: hub.policyVersion, ledger: hub.ledger });
      personId = (await store.enrol(engine, { name: 'A', photos: [crop], minor: false })).personId;
      stranger = newSightingId();
      await store.sightings.record({ sightingId: stranger, cameraId: 'front', eventId: 'evt-7', at: Date.now(), label: 'known', personId, descriptor: sightingDescriptor });

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
        handlers: faceCommands({ people: () => store, registry, mayEnrol: () => ({ allowed: true, reason: 'ok' }) }),
      });
      await control.start();
      identity = await generateX25519Identity();
      identityFile = join(dir, 'household.key');
      writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
      stateFile = join(dir, 'app-state.json');
      appMqtt = await mqtt.connectAsync(broker.url);
      app = new AppClient({
        client: appMqtt,
        baseTopic: 'camveil',
        hubId: HUB,
        timeoutMs: 10_000,
        stateFile,
        pinned: { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient },
        identity,
      });
      registry.add({ publicKey: app.key.publicKey, recipient: await identityToRecipient(identity), label: 'test phone' }, Date.now());
      await app.start();
    } finally {
      engine.unload();
    }
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

  const snapshot = async () => ({ revision: store.revision(), head: hub.audit.head(), people: await store.list() });

  it('an unsigned "this is not X" is refused and changes nothing', async () => {
    const before = await snapshot();
    const r = await app.request('faces/correct', { sightingId: stranger, personId, verdict: 'is-not' }, { sign: false });
    expect(r).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(await snapshot()).toEqual(before);
    expect((await store.load())[0]!.negatives).toEqual([]);
    // The phone CLI's --unsigned says the same, exit 1.
    const io = capture();
    expect(await runApp({ kind: 'faces-correct', sightingId: stranger, personId, verdict: 'is-not', unsigned: true }, { broker: broker.url, hub: HUB, state: stateFile }, io)).toBe(1);
    expect(io.out.join('')).toContain('CAMVEIL_E_NOT_AUTHORISED');
    expect(await snapshot()).toEqual(before);
  });

  it('signed but malformed or naming nothing known: refused, nothing changes', async () => {
    const before = await snapshot();
    const bad: Array<[unknown, string]> = [
      [{ sightingId: 'sight_1', personId, verdict: 'is-not' }, 'CAMVEIL_E_REQUEST_INVALID'],
      [{ sightingId: stranger, personId, verdict: 'maybe' }, 'CAMVEIL_E_REQUEST_INVALID'],
      [{ sightingId: stranger, personId, verdict: 'is', name: 'A' }, 'CAMVEIL_E_REQUEST_INVALID'],
      [{ sightingId: stranger }, 'CAMVEIL_E_REQUEST_INVALID'],
      [{ sightingId: 'sight_aaaaaaaaaaaaaaaa', personId, verdict: 'is' }, 'CAMVEIL_E_SIGHTING_NOT_FOUND'],
      [{ sightingId: stranger, personId: 'person_aaaaaaaaaaaaaaaa', verdict: 'is' }, 'CAMVEIL_E_PERSON_NOT_FOUND'],
    ];
    for (const [args, code] of bad) expect(await app.request('faces/correct', args, { sign: true }), JSON.stringify(args)).toMatchObject({ status: 'error', error: { code } });
    expect(await app.request('faces/add-photos', { personId, photos: [] }, { sign: true })).toMatchObject({
      status: 'error',
      error: { code: 'CAMVEIL_E_REQUEST_INVALID' },
    });
    expect(await app.request('faces/sightings', { limit: 0 }, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID' } });
    expect(await snapshot()).toEqual(before);
  });

  it('signed "this is not X": the negative is kept, the revision moves, the audit names key and sighting, no name', async () => {
    const data = ok(await app.request('faces/correct', { sightingId: stranger, personId, verdict: 'is-not' }, { sign: true }));
    expect(data).toEqual({ personId, sightingId: stranger, verdict: 'is-not', templates: 1, negatives: 1 });
    const person = (await store.load())[0]!;
    expect(person.negatives).toEqual([sightingDescriptor]);
    expect(hub.audit.entries().at(-1)).toMatchObject({ type: 'face.templates', details: { subject: personId, change: 'is-not', sighting: stranger, keyId: app.key.keyId } });
  });

  it('faces/sightings: unsigned refused; signed, the list comes sealed to the phone only', async () => {
    expect(await app.request('faces/sightings', {}, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    const data = ok(await app.request('faces/sightings', {}, { sign: true })) as { count: number; sealedSightings: string };
    expect(data.count).toBe(1);
    expect(JSON.stringify(data)).not.toContain(personId);
    const list = JSON.parse((await decryptToBuffer(identity, Buffer.from(data.sealedSightings, 'base64'))).toString()) as unknown;
    expect(list).toEqual([{ sightingId: stranger, cameraId: 'front', eventId: 'evt-7', at: expect.any(Number) as number, label: 'known', personId }]);
    // The phone CLI decrypts it with the household identity.
    const io = capture();
    expect(await runApp({ kind: 'faces-sightings', identity: identityFile }, { broker: broker.url, hub: HUB, state: stateFile }, io)).toBe(0);
    expect(JSON.parse(io.out.join(''))).toMatchObject({ status: 'ok', data: { count: 1, sightings: [{ sightingId: stranger, personId }] } });
  });

  it('faces/add-photos: photos sealed to the hub, kept on request; and `camveil app faces correct --is` signed', async () => {
    const photo = (await import('node:fs')).readFileSync(crop2).toString('base64');
    const args = { personId, photos: [photo], keepPhotos: true };
    expect(await app.request('faces/add-photos', args, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect((await store.list())[0]).toMatchObject({ templates: 1, photosKept: 0 });
    expect(ok(await app.request('faces/add-photos', args, { sign: true }))).toEqual({ personId, templates: 2, photosKept: 1 });

    // The phone CLI: add a photo (not kept) and say the sighting is the person after all.
    const added = capture();
    expect(await runApp({ kind: 'faces-add-photos', personId, photos: [crop] }, { broker: broker.url, hub: HUB, state: stateFile, identity: identityFile }, added), added.out.join('')).toBe(0);
    expect(JSON.parse(added.out.join(''))).toMatchObject({ status: 'ok', data: { templates: 3, photosKept: 1 } });
    const io = capture();
    expect(await runApp({ kind: 'faces-correct', sightingId: stranger, personId, verdict: 'is' }, { broker: broker.url, hub: HUB, state: stateFile, identity: identityFile }, io), io.out.join('')).toBe(0);
    expect(JSON.parse(io.out.join(''))).toMatchObject({ status: 'ok', data: { verdict: 'is', templates: 4, negatives: 0 } });
    const listed = ok(await app.request('faces/list', {}, { sign: true })) as { people: unknown[] };
    expect(listed.people).toEqual([{ personId, minor: false, templates: 4, negatives: 0, photosKept: 1, enrolledAt: expect.any(String) as string }]);
  });
});
