import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path, { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FaceEngine } from '../../src/analysis/faces/face-engine.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { newSightingId } from '../../src/analysis/faces/sightings.js';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import type { ControlResponse } from '../../src/control/command.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { openDatabase } from '../../src/store/database.js';
import { waitFor } from '../harness/wait.js';
import { cropOf, DEMO } from '../unit/face-fixtures.js';

const HUB = 'stop-hub';
const WHO = localRequest('unsigned stop test');

/** A cloud that takes every PUT and never answers: an upload stays in flight until the hub aborts it. */
interface HangingCloud {
  url: string;
  puts: string[];
  aborted: number;
  close(): Promise<void>;
}

async function startHangingCloud(): Promise<HangingCloud> {
  const cloud: HangingCloud = { url: '', puts: [], aborted: 0, close: () => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    if (req.method === 'PUT') cloud.puts.push(req.url ?? '');
    req.resume();
    res.on('close', () => {
      if (!res.writableEnded) cloud.aborted += 1;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cloud.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cloud.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return cloud;
}

let root: string;
let engine: FaceEngine;
let crop: string;
let identity: string;
let recipient: string;
let cloud: HangingCloud;
let broker: EmbeddedBroker;
const running: Gateway[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'camveil-unsigned-stop-'));
  engine = await FaceEngine.open();
  const faces = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
  crop = join(root, 'person.jpg');
  await cropOf(faces[0]!, crop);
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  writeFileSync(join(root, 'token'), 'stop-token\n', { mode: 0o600 });
  cloud = await startHangingCloud();
  broker = await startEmbeddedBroker();
}, 60_000);

afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync();
  for (const g of running.splice(0)) await g.stop();
});

afterAll(async () => {
  engine?.unload();
  await cloud?.close();
  await broker?.close();
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

async function startGateway(dataDir: string): Promise<Gateway> {
  const raw = {
    hub: { id: HUB, region: 'DE' },
    dataDir,
    household: { recipients: [recipient] },
    uplink: { enabled: true, endpoints: { eu: cloud.url }, tokenFile: join(root, 'token'), timeoutSeconds: 600 },
    mqtt: { url: broker.url },
    faceRecognition: { albumIntervalSeconds: 1 },
  };
  const gateway = new Gateway({ config: validateConfig(raw, 'test', root), logger: createLogger({ level: 'silent' }) });
  await gateway.start();
  running.push(gateway);
  return gateway;
}

/** An app on the broker that pinned the hub's keys; `paired` registers its key with the hub (as pairing would). */
async function appFor(dataDir: string, paired: boolean): Promise<AppClient> {
  const keys = await loadOrCreateHubKeys(dataDir);
  const client = await mqtt.connectAsync(broker.url);
  clients.push(client);
  const app = new AppClient({ client, baseTopic: 'camveil', hubId: HUB, timeoutMs: 10_000, identity, pinned: { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
  if (paired) {
    const db = openDatabase(dataDir);
    try {
      new KeyRegistry(db).add({ publicKey: app.key.publicKey, recipient, label: 'phone' }, Date.now());
    } finally {
      db.close();
    }
  }
  await app.start();
  // The hub subscribes once its own client has connected: ask until it answers.
  let r: ControlResponse | undefined;
  for (let i = 0; r === undefined && i < 20; i++) r = await app.request('status', {}, { sign: false }).catch(() => undefined);
  expect(r?.status).toBe('ok');
  return app;
}

function count(dataDir: string, sql: string): number {
  const db = new Database(join(dataDir, 'camveil.db'), { readonly: true });
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** What the household holds: people, sightings, albums, uploads waiting, and their staged files. */
function holdings(dataDir: string): { people: number; sightings: number; albums: number; queued: number; staged: number } {
  const staging = join(dataDir, 'outbox');
  return {
    people: count(dataDir, 'SELECT count(*) AS n FROM faces_people'),
    sightings: count(dataDir, 'SELECT count(*) AS n FROM faces_sightings'),
    albums: count(dataDir, 'SELECT count(*) AS n FROM face_albums'),
    queued: count(dataDir, "SELECT count(*) AS n FROM uplink_outbox WHERE state IN ('queued', 'uploading')"),
    staged: existsSync(staging) ? readdirSync(staging).length : 0,
  };
}

/** A hub with two people enrolled, a sighting each, and their two albums on the way to the cloud (one in flight). */
async function hubWithData(name: string): Promise<{ gateway: Gateway; dataDir: string; results: Array<CamveilEvents['upload.result']>; incidents: Array<CamveilEvents['incident']> }> {
  const dataDir = join(root, name);
  const gateway = await startGateway(dataDir);
  const results: Array<CamveilEvents['upload.result']> = [];
  const incidents: Array<CamveilEvents['incident']> = [];
  gateway.bus.on('upload.result', (r) => results.push(r));
  gateway.bus.on('incident', (e) => incidents.push(e));
  await gateway.consent.acceptPolicy('2021-10-31', WHO);
  for (const c of ['cloudUpload', 'localRecording', 'faceRecognition'] as const) await gateway.consent.grant(c, WHO);
  const puts = cloud.puts.length;
  for (const who of ['A', 'B']) {
    const person = await gateway.enrolment.enrol(engine, { name: who, photos: [crop], minor: false });
    const sightingId = newSightingId();
    await gateway.enrolment.sightings.record({ sightingId, cameraId: 'porch', at: Date.now(), label: 'known', personId: person.personId, descriptor: new Float32Array(128).fill(0.05) });
    gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId, eventId: randomUUID() });
  }
  await waitFor('both albums queued, one in flight', () => holdings(dataDir).queued === 2 && cloud.puts.length > puts, 30_000);
  return { gateway, dataDir, results, incidents };
}

describe('unsigned means stop, never destroy', () => {
  it('an unsigned withdrawal over MQTT stops the flow, deletes nothing, survives a restart and tells the household; a signed one deletes', async () => {
    const { gateway, dataDir, results, incidents } = await hubWithData('stop');
    const before = holdings(dataDir);
    expect(before).toEqual({ people: 2, sightings: 2, albums: 2, queued: 2, staged: 2 });
    const app = await appFor(dataDir, false);
    const told: unknown[] = [];
    await app.followEvents(identity, (e) => told.push(e));
    const aborted = cloud.aborted;

    for (const consent of ['faceRecognition', 'cloudUpload']) {
      const r = await app.request('consent/set', { action: 'withdraw', consent }, { sign: false });
      expect(r.status).toBe('ok');
    }
    // Stopped at once: the upload in flight was aborted, the gate refuses uploads and face work.
    expect(gateway.state().mode).toEqual({ mode: 'local-only', reason: 'cloud-upload-withdrawn' });
    expect(results.some((r) => r.result === 'aborted')).toBe(true);
    await waitFor('the cloud to see the upload aborted', () => cloud.aborted > aborted, 30_000);
    expect(gateway.gate.mayEnrolFaces()).toEqual({ allowed: false, reason: 'face-consent-missing' });
    expect(gateway.faceStats()).toMatchObject({ detectCalls: 0, describeCalls: 0 });
    // The household is told, sealed, and the incident is audited.
    await waitFor('the sealed security event', () => told.some((e) => (e as { type?: string; reason?: string }).reason === 'unsigned-stop'), 30_000);
    expect(incidents.map((i) => i.reason)).toContain('unsigned-stop');

    // Restart: the stop holds (local-only from the ledger), and still nothing is deleted or sent.
    const putsBefore = cloud.puts.length;
    await gateway.stop();
    running.splice(0);
    for (const c of clients.splice(0)) await c.endAsync();
    const again = await startGateway(dataDir);
    expect(again.state().mode).toEqual({ mode: 'local-only', reason: 'cloud-upload-withdrawn' });
    expect(again.gate.mayEnrolFaces().allowed).toBe(false);
    // start() ran the withdrawal checks (templates, albums, queue) before returning.
    expect(holdings(dataDir)).toEqual(before);
    expect(cloud.puts.length).toBe(putsBefore);
    const audit = new Database(join(dataDir, 'camveil.db'), { readonly: true });
    try {
      const rows = audit.prepare("SELECT record FROM audit WHERE type = 'incident'").all() as Array<{ record: string }>;
      expect(rows.map((r) => (JSON.parse(r.record) as { details: { reason: string } }).details.reason)).toContain('unsigned-stop');
      const withdrawals = audit.prepare("SELECT actor FROM policy_consent_ledger WHERE kind = 'withdraw'").all() as Array<{ actor: string }>;
      expect(withdrawals.map((w) => w.actor)).toEqual(['unsigned-request', 'unsigned-request']);
    } finally {
      audit.close();
    }

    // A paired key's signed withdrawal deletes: cloudUpload destroys the held queue (and its staged files)...
    const signed = await appFor(dataDir, true);
    expect((await signed.request('consent/set', { action: 'withdraw', consent: 'cloudUpload' }, { sign: true })).status).toBe('ok');
    expect(holdings(dataDir)).toEqual({ ...before, queued: 0, staged: 0 });
    // ...faceRecognition the templates, sightings and albums.
    expect((await signed.request('consent/set', { action: 'withdraw', consent: 'faceRecognition' }, { sign: true })).status).toBe('ok');
    await waitFor('templates, sightings and albums deleted', () => {
      const h = holdings(dataDir);
      return h.people === 0 && h.sightings === 0 && h.albums === 0;
    }, 30_000);
  }, 180_000);

  it('a signed grant after an unsigned stop sends the held queue; a signed data/delete then deletes everything', async () => {
    const { gateway, dataDir } = await hubWithData('resume');
    const app = await appFor(dataDir, true);
    expect((await app.request('consent/set', { action: 'withdraw', consent: 'cloudUpload' }, { sign: false })).status).toBe('ok');
    expect(gateway.state().mode.mode).toBe('local-only');
    expect(holdings(dataDir).queued).toBe(2);
    const puts = cloud.puts.length;
    expect((await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: true })).status).toBe('ok');
    expect(gateway.state().mode.mode).toBe('cloud');
    // The held upload goes out again (the cloud hangs, so it stays in flight).
    await waitFor('a held upload sent again', () => cloud.puts.length > puts, 30_000);
    // An unsigned data/delete is refused; a signed one deletes templates, sightings, albums and the queue.
    expect(await app.request('data/delete', { confirm: 'delete-all' }, { sign: false })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(holdings(dataDir).people).toBe(2);
    expect((await app.request('data/delete', { confirm: 'delete-all' }, { sign: true })).status).toBe('ok');
    await waitFor('everything deleted', () => {
      const h = holdings(dataDir);
      return h.people === 0 && h.sightings === 0 && h.albums === 0 && h.queued === 0;
    }, 30_000);
  }, 180_000);
});
