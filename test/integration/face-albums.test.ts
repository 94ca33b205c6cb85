import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path, { join } from 'node:path';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { FaceEngine } from '../../src/analysis/faces/face-engine.js';
import type { FaceAlbumContent } from '../../src/faces/face-albums.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { newSightingId } from '../../src/analysis/faces/sightings.js';
import { runDataDelete } from '../../src/commands/data.js';
import type { CommandIO } from '../../src/commands/io.js';
import { validateConfig } from '../../src/config/load.js';
import { openObjectToBuffer } from '../../src/crypto/sealed-object.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { startReceiver, type Receiver } from '../../src/receiver/server.js';
import { startCapturingProxy, type CapturingProxy } from '../harness/capturing-proxy.js';
import { describeWithPeers, hasPeer } from '../harness/peers.js';
import { findPlaintext, readTree } from '../harness/plaintext-scan.js';
import { waitFor } from '../harness/wait.js';
import { cropOf, DEMO } from '../unit/face-fixtures.js';

const TOKEN = 'albums-token';
const WHO = localRequest('face albums test');
const NAME = 'Zelda Quirinus';

let root: string;
let engine: FaceEngine;
let crop: string;
let identity: string;
let recipient: string;
let receiver: Receiver;
let proxy: CapturingProxy;
const running: Gateway[] = [];

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'camveil-albums-'));
  engine = await FaceEngine.open();
  const faces = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
  crop = join(root, 'person.jpg');
  await cropOf(faces[0]!, crop);
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  writeFileSync(join(root, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  receiver = await startReceiver({ dir: join(root, 'cloud'), token: TOKEN });
  proxy = await startCapturingProxy({ target: receiver.url });
}, 60_000);

afterEach(async () => {
  for (const g of running.splice(0)) await g.stop();
});

afterAll(async () => {
  engine?.unload();
  await proxy?.close();
  await receiver?.close();
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

interface Hub {
  gateway: Gateway;
  dataDir: string;
  configFile: string;
  /** Face-album objects the uploader reported uploaded, in order. */
  albums: string[];
  hubPseudonym: string;
  /** Where the receiver keeps what this hub uploaded. */
  cloudDir: string;
}

async function startHub(name: string, options: { embeddings?: boolean; face?: boolean; cloud?: boolean; dataDir?: string; endpoint?: string; cloudDir?: string } = {}): Promise<Hub> {
  const dataDir = options.dataDir ?? join(root, name);
  const raw = {
    hub: { id: 'albums-hub', region: 'DE' },
    dataDir,
    household: { recipients: [recipient] },
    uplink: { enabled: true, endpoints: { eu: options.endpoint ?? proxy.url }, tokenFile: join(root, 'token') },
    faceRecognition: { albumEmbeddings: options.embeddings ?? false, albumIntervalSeconds: 1, albumMaxSightings: 3 },
  };
  const configFile = join(root, `${name}.json`);
  writeFileSync(configFile, JSON.stringify(raw));
  const gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
  const albums: string[] = [];
  gateway.bus.on('upload.result', (r) => {
    if (r.kind === 'face-album' && r.result === 'uploaded') albums.push(r.objectId);
  });
  await gateway.start();
  running.push(gateway);
  if (options.dataDir === undefined) {
    await gateway.consent.acceptPolicy('2021-10-31', WHO);
    if (options.cloud ?? true) await gateway.consent.grant('cloudUpload', WHO);
    await gateway.consent.grant('localRecording', WHO);
    if (options.face ?? true) await gateway.consent.grant('faceRecognition', WHO);
  }
  expect(gateway.state().mode.mode).toBe((options.cloud ?? true) ? 'cloud' : 'local-only');
  return { gateway, dataDir, configFile, albums, hubPseudonym: gateway.state().hub, cloudDir: options.cloudDir ?? join(root, 'cloud') };
}

const cloudPath = (hub: Hub, objectId: string): string => join(hub.cloudDir, hub.hubPseudonym, `${objectId}.age`);
const deletesOf = (objectId: string): number => proxy.exchanges().filter((x) => x.method === 'DELETE' && x.url.endsWith(`/${objectId}`) && x.status === 200).length;

async function openAlbum(hub: Hub, objectId: string): Promise<{ kind: string; camera: string | undefined; content: FaceAlbumContent }> {
  const { manifest, body } = await openObjectToBuffer(identity, readFileSync(cloudPath(hub, objectId)));
  return { kind: manifest.kind, camera: manifest.cameraPseudonym, content: JSON.parse(body.toString('utf8')) as FaceAlbumContent };
}

/** Waits until the newest uploaded album satisfies `check`; returns its id and content. */
async function waitForAlbum(hub: Hub, what: string, check: (content: FaceAlbumContent) => boolean, timeoutMs = 10_000): Promise<{ objectId: string; content: FaceAlbumContent }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const objectId = hub.albums.at(-1);
    if (objectId !== undefined && existsSync(cloudPath(hub, objectId))) {
      const { content } = await openAlbum(hub, objectId);
      if (check(content)) return { objectId, content };
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function albumRows(dataDir: string): number {
  const db = new Database(join(dataDir, 'camveil.db'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM face_albums').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function capture(): CommandIO & { out: string[] } {
  const out: string[] = [];
  return { out, stdout: (t) => out.push(t), stderr: () => undefined };
}

describeWithPeers(['ffmpeg'], 'face albums: sealed person → events for the household, deleted with the person', () => {
  it('uploads an album the household opens (person id, event ids, no name, no embeddings); a newer one replaces it and the cloud deletes the old; deleting the person deletes the album', async () => {
    const hub = await startHub('basic');
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    const [e1, e2, e3] = [randomUUID(), randomUUID(), randomUUID()];
    const t0 = Date.now();
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: t0, distance: 0.41234, sightingId: 'sight_aaaaaaaaaaaaaaaa', eventId: e1 });
    // The same sighting again, closer: still one entry.
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: t0, distance: 0.3, sightingId: 'sight_aaaaaaaaaaaaaaaa', eventId: e1 });
    hub.gateway.bus.emit('face.known', { cameraId: 'garden', personId: person.personId, at: t0 + 1000, distance: 0.45, sightingId: 'sight_bbbbbbbbbbbbbbbb', eventId: e2 });
    await waitFor('the first album upload', () => hub.albums.length >= 1, 10_000);
    const first = hub.albums[0]!;
    const sealed = readFileSync(cloudPath(hub, first));
    expect(sealed.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    for (const clear of [person.personId, e1, NAME]) expect(sealed.includes(Buffer.from(clear))).toBe(false);
    const a = await openAlbum(hub, first);
    expect(a.kind).toBe('face-album');
    expect(a.camera).toBeUndefined();
    expect(a.content.personId).toBe(person.personId);
    expect(a.content.embeddings).toBeUndefined();
    expect(JSON.stringify(a.content)).not.toContain('Zelda');
    // The second sighting may be in the first album or follow in the next one.
    expect(a.content.sightings[0]?.eventId).toBe(e1);
    expect(a.content.sightings[0]).toMatchObject({ sightingId: 'sight_aaaaaaaaaaaaaaaa', distance: 0.3, cameraPseudonym: hub.gateway.pseudonymise('cam', 'porch') });

    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: t0 + 2000, distance: 0.39, sightingId: 'sight_cccccccccccccccc', eventId: e3 });
    const b = await waitForAlbum(hub, 'an album listing e3', (c) => c.sightings.some((s) => s.eventId === e3));
    const latest = b.objectId;
    expect(b.content.sightings.map((s) => s.eventId)).toEqual([e1, e2, e3]);
    expect(b.content.sightings.map((s) => s.sightingId)).toEqual(['sight_aaaaaaaaaaaaaaaa', 'sight_bbbbbbbbbbbbbbbb', 'sight_cccccccccccccccc']);
    // Every album before the latest was deleted from the cloud and from the hub.
    await waitFor('the superseded albums to be deleted in the cloud', () => hub.albums.slice(0, -1).every((id) => deletesOf(id) === 1), 10_000);
    for (const id of hub.albums.slice(0, -1)) expect(existsSync(cloudPath(hub, id))).toBe(false);
    expect(hub.gateway.state().storage?.objects).toBe(1);

    // Deleting the person: the cloud gets a DELETE for the album, the hub keeps nothing of it.
    hub.gateway.enrolment.delete(person.personId);
    await waitFor('the DELETE of the album', () => deletesOf(latest) === 1, 10_000);
    expect(existsSync(cloudPath(hub, latest))).toBe(false);
    expect(hub.gateway.state().storage?.objects).toBe(0);
    expect(albumRows(hub.dataDir)).toBe(0);
    // A late sighting of the deleted person is not kept.
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId() });
    await new Promise((r) => setTimeout(r, 1500));
    expect(albumRows(hub.dataDir)).toBe(0);
  }, 60_000);

  it('keeps the last N sightings, and the list across restarts (sealed to the hub); the album before the restart is replaced and deleted', async () => {
    let hub = await startHub('restart');
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    const events = Array.from({ length: 5 }, () => randomUUID());
    const t0 = Date.now();
    events.slice(0, 2).forEach((eventId, i) => hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: t0 + i, distance: 0.4, sightingId: newSightingId(), eventId }));
    await hub.gateway.stop();
    running.splice(0);
    // stop() sealed and queued the pending album; the next run uploads it.
    hub = await startHub('restart-2', { dataDir: hub.dataDir });
    const before = await waitForAlbum(hub, 'the album sealed at stop', (c) => c.sightings.length === 2);
    expect(before.content.sightings.map((s) => s.eventId)).toEqual(events.slice(0, 2));
    events.slice(2).forEach((eventId, i) => hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: t0 + 10 + i, distance: 0.4, sightingId: newSightingId(), eventId }));
    const after = await waitForAlbum(hub, 'an album with the newest sightings', (c) => c.sightings.some((s) => s.eventId === events[4]));
    // albumMaxSightings is 3: the oldest two went.
    expect(after.content.sightings.map((s) => s.eventId)).toEqual(events.slice(2));
    await waitFor('the album from before the restart to be deleted in the cloud', () => deletesOf(before.objectId) === 1, 10_000);
    // The database holds no event id and no sighting list in clear.
    await hub.gateway.stop();
    running.splice(0);
    const files = readTree(hub.dataDir);
    for (const [file, bytes] of files) {
      const findings = findPlaintext(bytes, events.map((e) => ({ label: `event id ${e}`, bytes: Buffer.from(e) })));
      expect(findings, file).toEqual([]);
    }
  }, 60_000);

  it('puts the templates in the album only with the household opt-in', async () => {
    const hub = await startHub('embeddings', { embeddings: true });
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId: randomUUID() });
    await waitFor('an album', () => hub.albums.length >= 1, 10_000);
    const { content } = await openAlbum(hub, hub.albums[0]!);
    expect(content.embeddings).toHaveLength(1);
    const bytes = Buffer.from(content.embeddings![0]!, 'base64');
    const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    const [loaded] = await hub.gateway.enrolment.load();
    expect(decoded).toEqual(Array.from(loaded!.templates[0]!));
    expect(decoded).toHaveLength(128);
  }, 60_000);

  it('without faceRecognition consent no album is made or uploaded, and the hub holds no person→event plaintext', async () => {
    const hub = await startHub('no-consent', { face: false });
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    const eventId = randomUUID();
    // The face stage would not run without the consent; the album refuses on its own all the same.
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: 'sight_dddddddddddddddd', eventId });
    await new Promise((r) => setTimeout(r, 2500));
    expect(hub.gateway.state().storage?.objects).toBe(0);
    expect(hub.gateway.state().uplink?.outbox).toMatchObject({ queued: 0, uploading: 0, uploaded: 0 });
    await hub.gateway.stop();
    running.splice(0);
    expect(hub.albums).toEqual([]);
    expect(receiver.received().filter((r) => r.hub === hub.hubPseudonym)).toEqual([]);
    // Not even the hub-sealed list keeps the sighting without the consent.
    expect(albumRows(hub.dataDir)).toBe(0);
    for (const [file, bytes] of readTree(hub.dataDir)) {
      const findings = findPlaintext(bytes, [
        { label: 'the event id', bytes: Buffer.from(eventId) },
        { label: 'the sighting id', bytes: Buffer.from('sight_dddddddddddddddd') },
        { label: 'the name', bytes: Buffer.from(NAME) },
        { label: 'an album field', bytes: Buffer.from('"sightings"') },
      ]);
      expect(findings, file).toEqual([]);
    }
  }, 60_000);

  it('while the gate refuses face-album uploads (local-only) nothing is sealed for the household; the album follows once uploads are allowed', async () => {
    const hub = await startHub('held', { cloud: false });
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    const eventId = randomUUID();
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId });
    await new Promise((r) => setTimeout(r, 1500));
    expect(hub.gateway.state().storage?.objects).toBe(0);
    expect(albumRows(hub.dataDir)).toBe(1);
    await hub.gateway.consent.grant('cloudUpload', WHO);
    const album = await waitForAlbum(hub, 'the held album', (c) => c.sightings.length === 1);
    expect(album.content.sightings[0]?.eventId).toBe(eventId);
  }, 60_000);

  it('an album whose queued upload local-only mode destroyed is sealed again once uploads are allowed again', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address() as AddressInfo;
        probe.close(() => resolve(p));
      });
    });
    const cloudDir = join(root, 'cloud-late');
    const hub = await startHub('resend', { endpoint: `http://127.0.0.1:${port}`, cloudDir });
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    const eventId = randomUUID();
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId });
    // Nothing listens on the port yet: the album waits in the outbox.
    await waitFor('the album to be queued', () => (hub.gateway.state().uplink?.outbox.queued ?? 0) + (hub.gateway.state().uplink?.outbox.uploading ?? 0) === 1, 10_000);
    await hub.gateway.consent.withdraw('cloudUpload', WHO);
    expect(hub.gateway.state().uplink?.outbox).toMatchObject({ queued: 0, uploading: 0 });
    const late = await startReceiver({ dir: cloudDir, token: TOKEN, port });
    try {
      await hub.gateway.consent.grant('cloudUpload', WHO);
      const album = await waitForAlbum(hub, 'the album sealed again', (c) => c.sightings[0]?.eventId === eventId);
      expect(late.received().map((r) => r.objectId)).toEqual([album.objectId]);
      expect(hub.gateway.state().storage?.objects).toBe(1);
    } finally {
      await hub.gateway.stop();
      running.splice(0);
      await late.close();
    }
  }, 60_000);

  it('an album replaced while its upload still waits in the outbox is withdrawn from the outbox: only the newer one ever goes out', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address() as AddressInfo;
        probe.close(() => resolve(p));
      });
    });
    const cloudDir = join(root, 'cloud-replaced');
    const hub = await startHub('replaced', { endpoint: `http://127.0.0.1:${port}`, cloudDir });
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    const [e1, e2] = [randomUUID(), randomUUID()];
    const queued = () => (hub.gateway.state().uplink?.outbox.queued ?? 0) + (hub.gateway.state().uplink?.outbox.uploading ?? 0);
    const storedAlbums = (): string[] => {
      const db = new Database(join(hub.dataDir, 'camveil.db'), { readonly: true });
      try {
        return (db.prepare("SELECT object_id FROM store_objects WHERE kind = 'face-album'").all() as Array<{ object_id: string }>).map((r) => r.object_id);
      } finally {
        db.close();
      }
    };
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId: e1 });
    // Nothing listens on the port: the first album waits in the outbox.
    await waitFor('the first album to be queued', () => queued() === 1 && storedAlbums().length === 1, 10_000);
    const [first] = storedAlbums();
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId: e2 });
    await waitFor('the second album to replace the first on the hub', () => storedAlbums().length === 1 && storedAlbums()[0] !== first, 10_000);
    expect(queued()).toBe(1);
    const late = await startReceiver({ dir: cloudDir, token: TOKEN, port });
    try {
      const album = await waitForAlbum(hub, 'the newer album', (c) => c.sightings.some((x) => x.eventId === e2));
      expect(album.content.sightings.map((x) => x.eventId)).toEqual([e1, e2]);
      // Only the newer album reached the cloud; the first never left the hub, nor was it left to fail.
      expect(late.received().map((r) => r.objectId)).toEqual([album.objectId]);
      expect(hub.gateway.state().uplink?.outbox).toMatchObject({ queued: 0, uploading: 0, uploaded: 1, failed: 0 });
    } finally {
      await hub.gateway.stop();
      running.splice(0);
      await late.close();
    }
  }, 60_000);

  it('withdrawing faceRecognition deletes the albums on the hub and in the cloud, in local-only mode too', async () => {
    const hub = await startHub('withdraw');
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId: randomUUID() });
    await waitFor('an album', () => hub.albums.length >= 1, 10_000);
    const album = hub.albums[0]!;
    // Local-only first: deletion requests carry only object ids and still go out.
    await hub.gateway.consent.withdraw('cloudUpload', WHO);
    expect(hub.gateway.state().mode.mode).toBe('local-only');
    await hub.gateway.consent.withdraw('faceRecognition', WHO);
    await waitFor('the DELETE of the album', () => deletesOf(album) === 1, 10_000);
    expect(hub.gateway.state().storage?.objects).toBe(0);
    expect(albumRows(hub.dataDir)).toBe(0);
  }, 60_000);

  it('camveil data delete drops the album rows and the cloud deletes the album', async () => {
    const hub = await startHub('data-delete');
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId: randomUUID() });
    await waitFor('an album', () => hub.albums.length >= 1, 10_000);
    await hub.gateway.stop();
    running.splice(0);
    expect(albumRows(hub.dataDir)).toBe(1);
    const io = capture();
    expect(await runDataDelete({ config: hub.configFile, yes: true }, io)).toBe(0);
    expect(deletesOf(hub.albums[0]!)).toBe(1);
    expect(albumRows(hub.dataDir)).toBe(0);
  }, 60_000);
});

describeWithPeers(['ffmpeg', 'age'], "face albums open with Debian's age CLI", () => {
  it('decrypts an uploaded album with age -d and a household key file', async () => {
    const hub = await startHub('age-cli');
    const person = await hub.gateway.enrolment.enrol(engine, { name: NAME, photos: [crop], minor: false });
    const eventId = randomUUID();
    hub.gateway.bus.emit('face.known', { cameraId: 'porch', personId: person.personId, at: Date.now(), distance: 0.4, sightingId: newSightingId(), eventId });
    await waitFor('an album', () => hub.albums.length >= 1, 10_000);
    const keyFile = join(root, 'household-key.txt');
    writeFileSync(keyFile, `${identity}\n`, { mode: 0o600 });
    expect(hasPeer('age')).toBe(true);
    const cli = spawnSync('age', ['-d', '-i', keyFile], { input: readFileSync(cloudPath(hub, hub.albums[0]!)) });
    expect(cli.status, cli.stderr.toString()).toBe(0);
    const length = cli.stdout.readUInt32BE(0);
    const manifest = JSON.parse(cli.stdout.subarray(4, 4 + length).toString('utf8')) as { kind: string };
    const content = JSON.parse(cli.stdout.subarray(4 + length).toString('utf8')) as FaceAlbumContent;
    expect(manifest.kind).toBe('face-album');
    expect(content.personId).toBe(person.personId);
    expect(content.sightings.map((s) => s.eventId)).toEqual([eventId]);
  }, 60_000);
});
