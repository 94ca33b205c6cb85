import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { privacySchema } from '../../src/config/schema.js';
import type { Manifest } from '../../src/crypto/manifest.js';
import { openObjectToBuffer } from '../../src/crypto/sealed-object.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway, type GatewayState } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { HUB_PSEUDONYM_PATTERN, startReceiver, type Receiver } from '../../src/receiver/server.js';
import type { EventRecord } from '../../src/store/sealed-media-sink.js';
import { openDatabase } from '../../src/store/database.js';
import { Outbox, type OutboxItem } from '../../src/uplink/outbox.js';
import { startCapturingProxy, type CapturingProxy } from '../harness/capturing-proxy.js';
import { probeMediaBuffer } from '../harness/media-probe.js';
import { describeWithPeers } from '../harness/peers.js';
import { countOccurrences, findJpegStarts, findMp4Boxes, findPlaintext, readTree, type Needle } from '../harness/plaintext-scan.js';
import { startRtspServer, type RtspServer } from '../harness/rtsp-server.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const MOTION_AT = 6;
const MOTION_UNTIL = 9;
const PRE_ROLL = 2;
const POST_ROLL = 2;
/** Distinctive so that a leak is unambiguous; neither appears in temp dir names or anywhere else. */
const CAMERA_ID = 'porch-cam-q7x';
const HUB_ID = 'hub-elbestrasse-9k';
const TOKEN = 'tok-sealed-pipeline-5ecret';
const KINDS = ['clip', 'event', 'snapshot'] as const;
const MiB = 1024 * 1024;

type Stored = CamveilEvents['object.stored'];
type UploadResult = CamveilEvents['upload.result'];

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function cameraVideo(): string {
  return motionVideo({ seconds: 24, motionAt: MOTION_AT, motionUntil: MOTION_UNTIL });
}

/** A port nothing listens on (taken from the kernel, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The byte just past an age header's MAC line. */
function ageHeaderEnd(file: Buffer): number {
  const mac = file.indexOf('\n--- ');
  if (mac === -1) throw new Error('no age MAC line');
  return file.indexOf('\n', mac + 1) + 1;
}

/** `<length><manifest JSON><body>` as the age CLI's output gives it. */
function splitSealedPlaintext(plaintext: Buffer): { manifestJson: string; body: Buffer } {
  const length = plaintext.readUInt32BE(0);
  return { manifestJson: plaintext.subarray(4, 4 + length).toString('utf8'), body: plaintext.subarray(4 + length) };
}

interface Hub {
  gateway: Gateway;
  dataDir: string;
  stored: Stored[];
  results: UploadResult[];
  logs: string[];
  /** The clip, snapshot and event objects of the first event, once all three are stored. */
  eventObjects(): Record<(typeof KINDS)[number], Stored> | undefined;
  /** Starts the gateway and gives the household's consents (policy accepted, local recording, cloud upload). */
  start(): Promise<void>;
  /** waitFor, with the tail of the gateway's log in the error. */
  until(what: string, predicate: () => boolean, timeoutMs: number): Promise<void>;
}

/** A gateway for one real RTSP camera, sealing to `recipients` and uploading to `endpoint` (zone eu). */
function makeHub(root: string, cameraUrl: string, recipients: string[], endpoint: string): Hub {
  const dataDir = path.join(root, 'hub');
  const tokenFile = path.join(root, 'uplink-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const config = validateConfig(
    {
      hub: { id: HUB_ID, region: 'DE' },
      dataDir,
      cameras: [{ id: CAMERA_ID, source: cameraUrl }],
      recording: { preRollSeconds: PRE_ROLL, postRollSeconds: POST_ROLL, maxClipSeconds: 30 },
      household: { recipients },
      // Only the eu endpoint works: a DE hub must pick it; the others would refuse the connection.
      uplink: { enabled: true, endpoints: { eu: endpoint, us: 'http://127.0.0.1:9', global: 'http://127.0.0.1:9' }, tokenFile, timeoutSeconds: 20 },
    },
    'sealed-pipeline test config',
    root,
  );
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(chunk.toString());
      callback();
    },
  });
  const gateway = new Gateway({ config, logger: createLogger({ level: 'info', destination }), backoff: { initialMs: 500, maxMs: 2000 } });
  const stored: Stored[] = [];
  const results: UploadResult[] = [];
  gateway.bus.on('object.stored', (e) => stored.push(e));
  gateway.bus.on('upload.result', (e) => results.push(e));
  const eventObjects = (): Record<(typeof KINDS)[number], Stored> | undefined => {
    const first = stored[0];
    if (first === undefined) return undefined;
    const mine = stored.filter((s) => s.eventId === first.eventId);
    const clip = mine.find((s) => s.kind === 'clip');
    const event = mine.find((s) => s.kind === 'event');
    const snapshot = mine.find((s) => s.kind === 'snapshot');
    return clip === undefined || event === undefined || snapshot === undefined ? undefined : { clip, event, snapshot };
  };
  return {
    gateway,
    dataDir,
    stored,
    results,
    logs,
    eventObjects,
    start: async () => {
      await gateway.start();
      // Motion comes 6 s into the stream: the household consents well before that.
      const who = localRequest('sealed-pipeline test: household consents');
      await gateway.consent.acceptPolicy(config.privacy.policyVersion, who);
      await gateway.consent.grant('localRecording', who);
      await gateway.consent.grant('cloudUpload', who);
      const mode = gateway.state().mode;
      if (mode.mode !== 'cloud') throw new Error(`the hub is not in cloud mode after consent: ${JSON.stringify(mode)}`);
    },
    until: async (what, predicate, timeoutMs) => {
      try {
        await waitFor(what, predicate, timeoutMs);
      } catch (error) {
        throw new Error(`${(error as Error).message}\nstored: ${JSON.stringify(stored)}\nresults: ${JSON.stringify(results)}\nlog tail:\n${logs.slice(-15).join('')}`);
      }
    },
  };
}

const uploadedIds = (results: UploadResult[]): string[] => results.filter((r) => r.result === 'uploaded').map((r) => r.objectId);

describeWithPeers(['ffmpeg', 'gst-rtsp-server', 'age'], 'sealed pipeline: camera → age objects → cloud, ciphertext only', () => {
  let root: string;
  let keyFile: string;
  let pqIdentity: string;
  let receiverDir: string;
  let receiver: Receiver | undefined;
  let proxy: CapturingProxy | undefined;
  let rtsp: RtspServer | undefined;
  let hub: Hub;
  let ids: Record<(typeof KINDS)[number], Stored>;
  let finalState: GatewayState;
  let hubFilesWhileRunning: Map<string, Buffer>;
  let hubFilesAfterStop: Map<string, Buffer>;
  let hubPseudonym: string;

  /** The uploaded (receiver-side) age file of an object. */
  const cloudFile = (objectId: string): Buffer => readFileSync(path.join(receiverDir, hubPseudonym, `${objectId}.age`));
  const opened = new Map<string, Promise<{ manifest: Manifest; body: Buffer }>>();
  const openPq = (objectId: string): Promise<{ manifest: Manifest; body: Buffer }> => {
    let p = opened.get(objectId);
    if (p === undefined) {
      p = openObjectToBuffer(pqIdentity, cloudFile(objectId));
      opened.set(objectId, p);
    }
    return p;
  };

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-sealed-'));
    // The household: a phone with a key made by Debian's age-keygen, and one with a post-quantum key.
    const household = path.join(root, 'household');
    mkdirSync(household, { mode: 0o700 });
    keyFile = path.join(household, 'phone-a.txt');
    expect(spawnSync('age-keygen', ['-o', keyFile]).status).toBe(0);
    const x25519Recipient = spawnSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).stdout.trim();
    expect(x25519Recipient).toMatch(/^age1[a-z0-9]{58}$/);
    pqIdentity = await generateHybridIdentity();
    const pqRecipient = await identityToRecipient(pqIdentity);
    expect(pqRecipient.startsWith('age1pq1')).toBe(true);

    receiverDir = path.join(root, 'cloud');
    receiver = await startReceiver({ dir: receiverDir, token: TOKEN });
    proxy = await startCapturingProxy({ target: receiver.url });
    rtsp = await startRtspServer({ file: cameraVideo() });
    hub = makeHub(root, rtsp.url, [x25519Recipient, pqRecipient], proxy.url);
    await hub.start();
    hubPseudonym = hub.gateway.state().hub;

    await hub.until('the event\'s clip, snapshot and event record to be uploaded', () => {
      const objects = hub.eventObjects();
      if (objects === undefined) return false;
      const done = new Set(uploadedIds(hub.results));
      return KINDS.every((k) => done.has(objects[k].objectId));
    }, 45_000);
    ids = hub.eventObjects()!;
    finalState = hub.gateway.state();
    // While the gateway runs its database has a write-ahead log: read it before stop() checkpoints it away.
    hubFilesWhileRunning = readTree(hub.dataDir);
    await hub.gateway.stop();
    hubFilesAfterStop = readTree(hub.dataDir);
  }, 60_000);

  afterAll(async () => {
    await hub?.gateway.stop();
    await rtsp?.stop();
    await proxy?.close();
    await receiver?.close();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it("1. the uploaded clip opens with Debian's age CLI and an age-keygen key: H.264 video, pseudonymous manifest", () => {
    const sealed = cloudFile(ids.clip.objectId);
    // Sealed to exactly the two household keys: one X25519 stanza, one ML-KEM-768+X25519 stanza, nothing else.
    const stanzaTypes = sealed
      .subarray(0, ageHeaderEnd(sealed))
      .toString('latin1')
      .split('\n')
      .filter((l) => l.startsWith('-> '))
      .map((l) => l.split(' ')[1]);
    expect(stanzaTypes.sort()).toEqual(['X25519', 'mlkem768x25519']);

    const cli = spawnSync('age', ['-d', '-i', keyFile], { input: sealed, maxBuffer: 256 * MiB });
    expect(cli.status, cli.stderr.toString()).toBe(0);
    const { manifestJson, body } = splitSealedPlaintext(cli.stdout);
    const manifest = JSON.parse(manifestJson) as Manifest;
    expect(manifest).toMatchObject({ version: 1, objectId: ids.clip.objectId, kind: 'clip', contentType: 'video/mp4' });
    // The terms the clip was captured under: the policy version in force (the config's default here).
    expect(manifest.policyVersion).toBe(privacySchema.parse({}).policyVersion);
    expect(manifest.cameraPseudonym).toMatch(/^cam_[a-z2-7]{16}$/);
    expect(manifest.cameraPseudonym).toBe(hub.gateway.pseudonymise('cam', CAMERA_ID));
    expect(manifestJson).not.toContain(CAMERA_ID);
    expect(manifestJson).not.toContain(HUB_ID);

    const media = probeMediaBuffer(body);
    expect(media.codec).toBe('h264');
    expect([media.width, media.height]).toEqual([1280, 720]);
    // The clip starts at 0 and covers the motion, from about the pre-roll before it to the post-roll after it.
    expect(media.firstPts).toBeCloseTo(0, 1);
    expect(media.lastPts).toBeGreaterThan(MOTION_UNTIL + POST_ROLL - (MOTION_AT - PRE_ROLL) - 1.5);
    expect(media.packets).toBeGreaterThan(50);
  });

  it('2. the post-quantum identity opens the same clip, a JPEG snapshot and the event record naming both', async () => {
    const clip = await openPq(ids.clip.objectId);
    const cli = spawnSync('age', ['-d', '-i', keyFile], { input: cloudFile(ids.clip.objectId), maxBuffer: 256 * MiB });
    expect(cli.status).toBe(0);
    const viaCli = splitSealedPlaintext(cli.stdout);
    expect(clip.manifest).toEqual(JSON.parse(viaCli.manifestJson));
    expect(sha256(clip.body)).toBe(sha256(viaCli.body));

    const snapshot = await openPq(ids.snapshot.objectId);
    expect(snapshot.manifest).toMatchObject({ objectId: ids.snapshot.objectId, kind: 'snapshot', contentType: 'image/jpeg', cameraPseudonym: clip.manifest.cameraPseudonym });
    expect(snapshot.body.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
    expect(findJpegStarts(snapshot.body)).toContain(0);

    const event = await openPq(ids.event.objectId);
    expect(event.manifest).toMatchObject({ objectId: ids.event.objectId, kind: 'event', contentType: 'application/json', cameraPseudonym: clip.manifest.cameraPseudonym });
    const record = JSON.parse(event.body.toString('utf8')) as EventRecord;
    expect(record).toMatchObject({ eventId: ids.clip.eventId, clipObjectId: ids.clip.objectId, snapshotObjectId: ids.snapshot.objectId, cameraPseudonym: clip.manifest.cameraPseudonym });
    expect(event.manifest.durationMs).toBe(record.durationMs);
    const media = probeMediaBuffer(clip.body);
    expect(Math.abs(record.durationMs / 1000 - (media.lastPts - media.firstPts))).toBeLessThan(1);
    expect(event.body.toString('utf8')).not.toContain(CAMERA_ID);
  });

  it('3. one flipped byte in the payload or in the header makes both the age CLI and openObject refuse the clip', async () => {
    const sealed = cloudFile(ids.clip.objectId);
    const headerEnd = ageHeaderEnd(sealed);
    const payloadFlip = Buffer.from(sealed);
    payloadFlip[headerEnd + Math.floor((sealed.length - headerEnd) / 2)]! ^= 0x01;
    // In the header: one base64 character of the X25519 stanza's ephemeral share, swapped for another valid one.
    const headerFlip = Buffer.from(sealed);
    const stanza = sealed.indexOf('-> X25519 ') + '-> X25519 '.length + 10;
    headerFlip[stanza] = headerFlip[stanza] === 0x41 ? 0x42 : 0x41;
    expect(headerFlip.equals(sealed)).toBe(false);
    expect(headerFlip.subarray(headerEnd).equals(sealed.subarray(headerEnd))).toBe(true);

    for (const [what, bad] of [['payload', payloadFlip], ['header', headerFlip]] as const) {
      const cli = spawnSync('age', ['-d', '-i', keyFile], { input: bad, maxBuffer: 256 * MiB });
      expect(cli.status, `age -d accepted a clip with a flipped ${what} byte`).not.toBe(0);
      expect(cli.status).not.toBeNull();
      await expect(openObjectToBuffer(pqIdentity, bad), `openObject accepted a flipped ${what} byte`).rejects.toMatchObject({
        code: 'CAMVEIL_E_DECRYPT_FAILED',
      });
    }
    // The untampered file still opens both ways (the failures above are due to the flips).
    expect(spawnSync('age', ['-d', '-i', keyFile], { input: sealed, maxBuffer: 256 * MiB }).status).toBe(0);
    await expect(openObjectToBuffer(pqIdentity, sealed)).resolves.toBeDefined();
  });

  it('4. no plaintext on the hub disk, in the cloud or on the wire; the hub appears only as its pseudonym', async () => {
    const clip = await openPq(ids.clip.objectId);
    const snapshot = await openPq(ids.snapshot.objectId);
    const event = await openPq(ids.event.objectId);
    const camPseudonym = clip.manifest.cameraPseudonym!;
    const sample = (b: Buffer, at: number): Buffer => b.subarray(Math.floor(b.length * at), Math.floor(b.length * at) + 64);
    const text = (label: string, s: string): Needle => ({ label, bytes: Buffer.from(s, 'utf8') });
    const common: Needle[] = [
      text('manifest field "cameraPseudonym"', '"cameraPseudonym"'),
      text('manifest field "contentType"', '"contentType"'),
      text('event record field "clipObjectId"', '"clipObjectId"'),
      text('media type video/mp4', 'video/mp4'),
      text('media type image/jpeg', 'image/jpeg'),
      text('the hub id', HUB_ID),
      { label: 'clip body start', bytes: clip.body.subarray(0, 64) },
      ...[0.2, 0.5, 0.8].map((at) => ({ label: `clip body sample at ${at}`, bytes: sample(clip.body, at) })),
      { label: 'snapshot start', bytes: snapshot.body.subarray(0, 64) },
      { label: 'snapshot middle', bytes: sample(snapshot.body, 0.5) },
      { label: 'event record', bytes: event.body.subarray(0, 64) },
    ];
    // The store's index keeps config camera ids in clear by design (src/store/schema.ts: "config camera ids"),
    // and the audit log names cameras by pseudonym: these two are looked for everywhere but the database.
    const withCameraId = [...common, text('the camera id', CAMERA_ID), text('the camera pseudonym', camPseudonym)];

    // The scanner does find plaintext when it is there.
    expect(findMp4Boxes(clip.body, 'ftyp')).toContain(0);
    expect(findMp4Boxes(clip.body, 'moof').length).toBeGreaterThan(0);
    expect(findMp4Boxes(clip.body, 'mdat').length).toBeGreaterThan(0);
    expect(findPlaintext(snapshot.body, []).map((f) => f.what)).toContain('JPEG start of image with marker segments');
    expect(findPlaintext(Buffer.concat([Buffer.from('x'), event.body]), withCameraId).map((f) => f.what)).toContain('event record field "clipObjectId"');

    const problems: string[] = [];
    let scannedBytes = 0;
    let bareJpegStarts = 0;
    const scan = (where: string, bytes: Buffer, needles: Needle[]): void => {
      scannedBytes += bytes.length;
      bareJpegStarts += countOccurrences(bytes, Buffer.from([0xff, 0xd8, 0xff]));
      for (const f of findPlaintext(bytes, needles)) problems.push(`${where} @${f.offset}: ${f.what}`);
    };

    // The hub's data directory, while running (database + WAL) and after stop.
    const hubFiles = new Map([...hubFilesWhileRunning].map(([p, b]) => [`running:${path.relative(hub.dataDir, p)}`, b]));
    for (const [p, b] of hubFilesAfterStop) hubFiles.set(`stopped:${path.relative(hub.dataDir, p)}`, b);
    const names = [...hubFiles.keys()];
    expect(names).toEqual(expect.arrayContaining(['running:camveil.db', 'running:camveil.db-wal', 'stopped:camveil.db']));
    expect(names.filter((n) => n.startsWith('running:objects/') && n.endsWith('.age'))).toHaveLength(3);
    for (const [name, bytes] of hubFiles) {
      const isDatabase = /camveil\.db(-wal|-shm)?$/.test(name);
      scan(`hub ${name}`, bytes, isDatabase ? common : withCameraId);
    }

    // The cloud's directory: one folder, named by the hub's pseudonym, holding age files.
    expect(hubPseudonym).toMatch(HUB_PSEUDONYM_PATTERN);
    expect(readdirSync(receiverDir)).toEqual([hubPseudonym]);
    const cloudFiles = readTree(receiverDir);
    expect(cloudFiles.size).toBe(3);
    for (const [p, bytes] of cloudFiles) {
      expect(bytes.subarray(0, 22).toString('latin1')).toBe('age-encryption.org/v1\n');
      scan(`cloud ${path.relative(receiverDir, p)}`, bytes, withCameraId);
    }

    // Everything that went over HTTP: request line, headers, bodies, answers.
    const exchanges = proxy!.exchanges();
    expect(exchanges).toHaveLength(3);
    for (const x of exchanges) {
      expect(x.method).toBe('PUT');
      expect(x.url).toMatch(new RegExp(`^/v1/objects/${hubPseudonym}/[a-z2-7]{26}$`));
      expect(x.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(x.body.subarray(0, 22).toString('latin1')).toBe('age-encryption.org/v1\n');
      const where = `HTTP ${x.method} ${x.url}`;
      scan(`${where} request line and headers`, Buffer.from(`${x.url}\n${JSON.stringify(x.headers)}`), withCameraId);
      scan(`${where} request body`, x.body, withCameraId);
      scan(`${where} response body`, x.responseBody, withCameraId);
    }

    expect(problems).toEqual([]);
    expect(scannedBytes).toBeGreaterThan(3 * clip.body.length);
    console.info(`sealed-pipeline: scanned ${(scannedBytes / MiB).toFixed(1)} MiB; bare FF D8 FF by chance: ${bareJpegStarts}`);
  });

  it('5. the outbox ends all uploaded and the cloud holds exactly the stored objects, each once, byte for byte', () => {
    expect(finalState.media).toBe('sealed');
    expect(finalState.uplink).toEqual({ zone: 'eu', outbox: { queued: 0, uploading: 0, uploaded: 3, failed: 0, oldestQueuedAt: null } });
    expect(finalState.storage?.objects).toBe(3);
    const storedIds = hub.stored.map((s) => s.objectId).sort();
    expect(storedIds).toEqual(KINDS.map((k) => ids[k].objectId).sort());
    expect(uploadedIds(hub.results).sort()).toEqual(storedIds);
    expect(hub.results.every((r) => r.result === 'uploaded')).toBe(true);
    // The staged upload links are gone once their uploads are done: only the store's copies remain.
    expect(existsSync(path.join(hub.dataDir, 'outbox')) ? readdirSync(path.join(hub.dataDir, 'outbox')) : []).toEqual([]);

    const received = receiver!.received();
    expect(received.map((r) => r.objectId).sort()).toEqual(storedIds);
    expect(new Set(received.map((r) => r.objectId)).size).toBe(received.length);
    expect(new Set(received.map((r) => r.hub))).toEqual(new Set([hubPseudonym]));
    const perId = new Map<string, number>();
    for (const x of proxy!.exchanges()) perId.set(x.url, (perId.get(x.url) ?? 0) + 1);
    expect([...perId.values()]).toEqual([1, 1, 1]);
    expect(proxy!.exchanges().every((x) => x.status === 200)).toBe(true);

    for (const s of hub.stored) {
      const local = hubFilesAfterStop.get(path.join(hub.dataDir, 'objects', `${s.objectId}.age`));
      expect(local, `object ${s.objectId} on the hub`).toBeDefined();
      expect(local!.length).toBe(s.bytes);
      expect(received.find((r) => r.objectId === s.objectId)?.bytes).toBe(s.bytes);
      expect(sha256(cloudFile(s.objectId))).toBe(sha256(local!));
    }
  });
});

interface DownThenUpOutcome {
  refusedWhileDown: UploadResult[];
  received: string[];
  storeIds: string[];
  state: GatewayState;
}

/** The cloud's port is closed while the event happens; the receiver starts there afterwards. */
async function downThenUp(recipient: string): Promise<DownThenUpOutcome> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-down-'));
  const port = await freePort();
  const rtsp = await startRtspServer({ file: cameraVideo() });
  let receiver: Receiver | undefined;
  const hub = makeHub(root, rtsp.url, [recipient], `http://127.0.0.1:${port}`);
  try {
    await hub.start();
    await hub.until('the event to be stored and every upload refused once', () => {
      const objects = hub.eventObjects();
      return objects !== undefined && KINDS.every((k) => hub.results.some((r) => r.objectId === objects[k].objectId && r.result === 'retry'));
    }, 40_000);
    expect(uploadedIds(hub.results)).toEqual([]);
    // No second event while we wait (the 24 s file would start over on reconnect).
    await rtsp.stop();
    const refusedWhileDown = [...hub.results];
    receiver = await startReceiver({ dir: path.join(root, 'cloud'), port, token: TOKEN });
    const r = receiver;
    await hub.until('every stored object to arrive after the cloud came back', () => {
      const outbox = hub.gateway.state().uplink?.outbox;
      return r.received().length >= 3 && outbox !== undefined && outbox.queued + outbox.uploading === 0;
    }, 45_000);
    const state = hub.gateway.state();
    const storeIds = readdirSync(path.join(hub.dataDir, 'objects')).filter((n) => n.endsWith('.age')).map((n) => n.slice(0, -4));
    await hub.gateway.stop();
    return { refusedWhileDown, received: r.received().map((x) => x.objectId), storeIds, state };
  } finally {
    await hub.gateway.stop();
    await rtsp.stop();
    await receiver?.close();
    rmSync(root, { recursive: true, force: true });
  }
}

interface ForbiddenOutcome {
  requests: string[];
  results: UploadResult[];
  storedIds: string[];
  state: GatewayState;
  rows: Array<OutboxItem | undefined>;
}

const FORBIDDEN_MESSAGE = 'this hub has no active subscription (plan expired 2026-10-31)';

/** The cloud answers every upload with 403 and a JSON error message. */
async function forbidden(recipient: string): Promise<ForbiddenOutcome> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-403-'));
  const requests: string[] = [];
  const cloud = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests.push(req.url ?? '');
      const body = JSON.stringify({ error: { code: 'forbidden', message: FORBIDDEN_MESSAGE } });
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => cloud.listen(0, '127.0.0.1', resolve));
  const rtsp = await startRtspServer({ file: cameraVideo() });
  const hub = makeHub(root, rtsp.url, [recipient], `http://127.0.0.1:${(cloud.address() as AddressInfo).port}`);
  try {
    await hub.start();
    await hub.until('every upload of the event to be rejected', () => {
      const objects = hub.eventObjects();
      return objects !== undefined && KINDS.every((k) => hub.results.some((r) => r.objectId === objects[k].objectId && r.result === 'rejected'));
    }, 40_000);
    await rtsp.stop();
    // Long enough for several retries had they been scheduled (the first backoff is at most 1 s).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const state = hub.gateway.state();
    const storedIds = hub.stored.map((s) => s.objectId);
    await hub.gateway.stop();
    const db = openDatabase(hub.dataDir);
    try {
      const outbox = new Outbox(db);
      return { requests: [...requests], results: [...hub.results], storedIds, state, rows: storedIds.map((id) => outbox.get(id)) };
    } finally {
      db.close();
    }
  } finally {
    await hub.gateway.stop();
    await rtsp.stop();
    cloud.closeAllConnections();
    await new Promise<void>((resolve) => cloud.close(() => resolve()));
    rmSync(root, { recursive: true, force: true });
  }
}

describeWithPeers(['ffmpeg', 'gst-rtsp-server', 'age'], 'sealed pipeline: the cloud down, then up; the cloud refusing', () => {
  // Both gateways run at once (each with its own camera); each test awaits its own run.
  let down: Promise<DownThenUpOutcome>;
  let refused: Promise<ForbiddenOutcome>;

  beforeAll(async () => {
    const recipient = await identityToRecipient(await generateX25519Identity());
    down = downThenUp(recipient);
    refused = forbidden(recipient);
    void down.catch(() => undefined);
    void refused.catch(() => undefined);
  });

  afterAll(async () => {
    await Promise.allSettled([down, refused]);
  }, 90_000);

  describe('receiver down, then up', () => {
    it('retries while the port is closed, then delivers every stored object exactly once', async () => {
      const outcome = await down;
      expect(outcome.storeIds).toHaveLength(3);
      for (const id of outcome.storeIds) {
        const refusals = outcome.refusedWhileDown.filter((r) => r.objectId === id);
        expect(refusals.length).toBeGreaterThan(0);
        expect(refusals.every((r) => r.result === 'retry' && r.code === 'CAMVEIL_E_UPLOAD_FAILED')).toBe(true);
      }
      expect([...outcome.received].sort()).toEqual([...outcome.storeIds].sort());
      expect(outcome.state.storage?.objects).toBe(3);
      expect(outcome.state.uplink?.outbox).toMatchObject({ queued: 0, uploading: 0, uploaded: 3, failed: 0 });
    }, 90_000);
  });

  describe('the cloud answers 403', () => {
    it('marks each object failed with the server\'s message, after one request each, and never retries', async () => {
      const outcome = await refused;
      expect(outcome.storedIds).toHaveLength(3);
      expect([...outcome.requests].sort()).toEqual(outcome.storedIds.map((id) => `/v1/objects/${outcome.state.hub}/${id}`).sort());
      expect(outcome.results.map((r) => r.result)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(outcome.results.every((r) => r.code === 'CAMVEIL_E_UPLOAD_REJECTED')).toBe(true);
      expect(outcome.state.uplink?.outbox).toMatchObject({ queued: 0, uploading: 0, uploaded: 0, failed: 3 });
      for (const row of outcome.rows) {
        expect(row).toMatchObject({ state: 'failed', attempts: 1, lastErrorCode: 'CAMVEIL_E_UPLOAD_REJECTED' });
        expect(row!.lastError).toBe(`HTTP 403: ${FORBIDDEN_MESSAGE}`);
      }
    }, 90_000);
  });
});
