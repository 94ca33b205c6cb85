import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decryptToBuffer, encryptStream, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { pseudonym } from '../../src/crypto/pseudonym.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { createLogger, silentLogger } from '../../src/log.js';
import type { Gate } from '../../src/policy/gate.js';
import { openDatabase } from '../../src/store/database.js';
import { allowAllGate } from '../harness/allow-all-gate.js';
import { startReceiver, type Receiver } from '../../src/receiver/server.js';
import { hashToken, parseTokensFile } from '../../src/receiver/tokens.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { Outbox, type OutboxEntry } from '../../src/uplink/outbox.js';
import { HttpReceiverStore, type HttpReceiverStoreOptions } from '../../src/uplink/http-receiver-store.js';
import { Uploader, type UploaderOptions } from '../../src/uplink/uploader.js';
import { spawnUplinkWorker } from '../harness/uplink-worker-process.js';
import { waitFor } from '../harness/wait.js';

const KiB = 1024;
const TOKEN = 'tok-uplink-test-5ecret';
const HUB = pseudonym(randomBytes(32), 'hub', 'test-hub');

let dir: string;
let tokenFile: string;
let recipient: string;
let identity: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'camveil-uplink-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

/** A real age file of about `size` plaintext bytes, written to the hub's objects folder. */
async function makeObject(size: number): Promise<OutboxEntry> {
  const objectId = newObjectId();
  const path = join(dir, 'objects', `${objectId}.age`);
  await mkdir(join(dir, 'objects'), { recursive: true });
  await pipeline(encryptStream([recipient], randomBytes(size)), createWriteStream(path));
  return { objectId, path, bytes: readFileSync(path).length, kind: 'clip' };
}

function openOutbox(): { db: Database.Database; outbox: Outbox } {
  const db = openDatabase(join(dir, 'data'));
  cleanups.push(() => {
    if (db.open) db.close();
  });
  return { db, outbox: new Outbox(db) };
}

function makeUploader(outbox: Outbox, endpoint: string, extra: Partial<UploaderOptions & HttpReceiverStoreOptions> = {}): Uploader {
  const { tokenFile: token = tokenFile, bandwidthBytesPerSecond, requestTimeoutMs, ...scheduling } = extra;
  const remote = new HttpReceiverStore({
    endpoint: validateEndpoint(endpoint),
    hubPseudonym: HUB,
    tokenFile: token,
    ...(bandwidthBytesPerSecond === undefined ? {} : { bandwidthBytesPerSecond }),
    ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
  });
  const uploader = new Uploader({
    outbox,
    gate: allowAllGate,
    remote,
    logger: silentLogger(),
    backoffBaseMs: 20,
    backoffCapMs: 200,
    ...scheduling,
  });
  cleanups.push(() => uploader.stop());
  return uploader;
}

async function receiver(extra: { port?: number; readBytesPerSecond?: number } = {}): Promise<Receiver> {
  // The hub's token bound to its pseudonym, as a receiver tokens file has it.
  const tokens = parseTokensFile(JSON.stringify({ version: 1, hubs: { [HUB]: { upload: hashToken(TOKEN) } } }), 'tokens.json');
  const r = await startReceiver({ dir: join(dir, 'cloud'), tokens, ...extra });
  cleanups.push(() => r.close());
  return r;
}

/** A test server: `reply` answers each request after its body was read; counts requests. */
async function fakeCloud(reply: (n: number, req: IncomingMessage, res: ServerResponse, bytes: number) => void): Promise<{ url: string; requests: () => number }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    n += 1;
    const count = n;
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => reply(count, req, res, bytes));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => n };
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

function cloudFile(objectId: string): string {
  return join(dir, 'cloud', HUB, `${objectId}.age`);
}

describe('uploader with the reference receiver', () => {
  it('uploads age files byte-identical, each once, and never logs the token', async () => {
    const r = await receiver();
    const { outbox } = openOutbox();
    const objects = [await makeObject(300 * KiB), await makeObject(10), await makeObject(70 * KiB)];
    for (const o of objects) outbox.enqueue(o);
    const logged = new PassThrough();
    const lines: Buffer[] = [];
    logged.on('data', (c: Buffer) => lines.push(c));
    const uploader = makeUploader(outbox, r.url, { concurrency: 2, logger: createLogger({ destination: logged, level: 'debug' }) });
    uploader.start();
    await waitFor('3 uploads', () => outbox.stats().uploaded === 3, 10_000);
    for (const o of objects) {
      expect(readFileSync(cloudFile(o.objectId)).equals(readFileSync(o.path))).toBe(true);
      expect(r.received().filter((x) => x.objectId === o.objectId)).toEqual([{ hub: HUB, objectId: o.objectId, bytes: o.bytes }]);
    }
    const list = (await (await fetch(`${r.url}/v1/objects/${HUB}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as Array<{
      objectId: string;
      bytes: number;
    }>;
    expect(list.map((x) => x.objectId).sort()).toEqual(objects.map((o) => o.objectId).sort());
    const plaintext = await decryptToBuffer(identity, readFileSync(cloudFile(objects[1]!.objectId)));
    expect(plaintext.length).toBe(10);
    await uploader.stop();
    const text = Buffer.concat(lines).toString();
    expect(text).toContain('object uploaded');
    expect(text).not.toContain(TOKEN);
  });

  it('keeps retrying while the receiver is down and delivers everything exactly once when it comes up', async () => {
    const probe = await startReceiver({ dir: join(dir, 'probe') });
    const port = probe.port;
    await probe.close();
    const { outbox } = openOutbox();
    const objects = [await makeObject(50 * KiB), await makeObject(1 * KiB)];
    for (const o of objects) outbox.enqueue(o);
    const uploader = makeUploader(outbox, `http://127.0.0.1:${port}`);
    uploader.start();
    await waitFor('failed attempts', () => (outbox.get(objects[0]!.objectId)?.attempts ?? 0) >= 2, 10_000);
    expect(outbox.get(objects[0]!.objectId)?.lastErrorCode).toBe('CAMVEIL_E_UPLOAD_FAILED');
    const r = await receiver({ port });
    uploader.kick();
    await waitFor('uploads', () => outbox.stats().uploaded === 2, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.received().map((x) => x.objectId).sort()).toEqual(objects.map((o) => o.objectId).sort());
    for (const o of objects) expect(readFileSync(cloudFile(o.objectId)).equals(readFileSync(o.path))).toBe(true);
  });

  it('survives a restart of the outbox and uploader on the same database', async () => {
    const r = await receiver({ readBytesPerSecond: 256 * KiB });
    const first = openOutbox();
    const o = await makeObject(512 * KiB);
    first.outbox.enqueue(o);
    const up1 = makeUploader(first.outbox, r.url);
    up1.start();
    await waitFor('upload in flight', () => up1.uploading().length === 1, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await up1.stop();
    first.db.close();
    expect(r.received()).toEqual([]);
    const second = openOutbox();
    expect(second.outbox.get(o.objectId)?.state).toBe('queued');
    const up2 = makeUploader(second.outbox, r.url);
    up2.start();
    await waitFor('upload after restart', () => second.outbox.get(o.objectId)?.state === 'uploaded', 10_000);
    expect(r.received().filter((x) => x.objectId === o.objectId)).toHaveLength(1);
    expect(readFileSync(cloudFile(o.objectId)).equals(readFileSync(o.path))).toBe(true);
  });

  it('respects the bandwidth cap', async () => {
    const r = await receiver();
    const { outbox } = openOutbox();
    const o = await makeObject(256 * KiB);
    outbox.enqueue(o);
    const uploader = makeUploader(outbox, r.url, { bandwidthBytesPerSecond: 128 * KiB });
    const started = performance.now();
    uploader.start();
    await waitFor('capped upload', () => outbox.get(o.objectId)?.state === 'uploaded', 10_000);
    const seconds = (performance.now() - started) / 1000;
    console.info(`bandwidth cap: ${o.bytes} bytes at 128 KiB/s in ${seconds.toFixed(2)} s = ${(o.bytes / seconds / KiB).toFixed(1)} KiB/s`);
    expect(seconds).toBeGreaterThanOrEqual(1.7);
    expect(seconds).toBeLessThan(4);
  });

  it('abortAll cuts a slow upload at once and leaves the item queued', async () => {
    const r = await receiver({ readBytesPerSecond: 64 * KiB });
    const { outbox } = openOutbox();
    const o = await makeObject(1024 * KiB);
    outbox.enqueue(o);
    let allowed = true;
    const gate: Gate = { mayUpload: () => (allowed ? { allowed, reason: 'test-allow' } : { allowed, reason: 'local-only' }) };
    const uploader = makeUploader(outbox, r.url, { gate });
    uploader.start();
    await waitFor('upload in flight', () => uploader.uploading().length === 1, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 400));
    allowed = false; // as local-only mode would: the gate says no before the abort
    // How fast is measured by `bench -- withdrawal`; here, that it settles with nothing left in flight.
    await uploader.abortAll('local-only');
    expect(uploader.uploading()).toEqual([]);
    // Released as aborted, then at once asked about again: the gate (local-only) holds it.
    expect(outbox.get(o.objectId)).toMatchObject({ state: 'queued', attempts: 0, lastError: 'gate: local-only' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(outbox.get(o.objectId)?.state).toBe('queued');
    expect(r.received()).toEqual([]);
    // The slow receiver notices the abort only after it has read what the kernel buffered; it never stores it.
    expect(existsSync(cloudFile(o.objectId))).toBe(false);
  });
});

describe('uploader against misbehaving clouds', () => {
  it('marks a 403 failed with the server message and does not retry it', async () => {
    const cloud = await fakeCloud((_n, _req, res) => json(res, 403, { error: { message: 'bucket closed' } }));
    const { outbox } = openOutbox();
    const o = await makeObject(1 * KiB);
    outbox.enqueue(o);
    makeUploader(outbox, cloud.url).start();
    await waitFor('failure', () => outbox.get(o.objectId)?.state === 'failed', 5_000);
    expect(outbox.get(o.objectId)).toMatchObject({ lastErrorCode: 'CAMVEIL_E_UPLOAD_REJECTED', lastError: 'HTTP 403: bucket closed', attempts: 1 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(cloud.requests()).toBe(1);
  });

  it('retries a 503 and then uploads, sending the protocol headers', async () => {
    const seen: Array<Record<string, string | undefined>> = [];
    const cloud = await fakeCloud((n, req, res, bytes) => {
      seen.push({ auth: req.headers.authorization, type: req.headers['content-type'], length: req.headers['content-length'], url: req.url });
      if (n === 1) {
        res.writeHead(503, { 'retry-after': '0' });
        res.end('busy');
        return;
      }
      json(res, 200, { objectId: req.url?.split('/').pop(), bytes });
    });
    const { outbox } = openOutbox();
    const o = await makeObject(20 * KiB);
    outbox.enqueue(o);
    makeUploader(outbox, cloud.url).start();
    await waitFor('upload', () => outbox.get(o.objectId)?.state === 'uploaded', 5_000);
    expect(cloud.requests()).toBe(2);
    expect(outbox.get(o.objectId)?.attempts).toBe(2);
    expect(seen[0]).toEqual({
      auth: `Bearer ${TOKEN}`,
      type: 'application/octet-stream',
      length: String(o.bytes),
      url: `/v1/objects/${HUB}/${o.objectId}`,
    });
  });

  it('records a 2xx with a garbage body as a protocol error and keeps running', async () => {
    const cloud = await fakeCloud((_n, _req, res) => json(res, 200, '<html>hello</html>'));
    const { outbox } = openOutbox();
    const o = await makeObject(1 * KiB);
    outbox.enqueue(o);
    const uploader = makeUploader(outbox, cloud.url);
    uploader.start();
    await waitFor('protocol errors', () => (outbox.get(o.objectId)?.attempts ?? 0) >= 2, 5_000);
    expect(outbox.get(o.objectId)).toMatchObject({ state: expect.stringMatching(/queued|uploading/) as unknown, lastErrorCode: 'CAMVEIL_E_CLOUD_PROTOCOL' });
    await uploader.stop();
    expect(outbox.get(o.objectId)?.state).toBe('queued');
  });

  it('sends nothing when the gate denies', async () => {
    const cloud = await fakeCloud((_n, _req, res) => json(res, 500, {}));
    const { outbox } = openOutbox();
    const o = await makeObject(1 * KiB);
    outbox.enqueue(o);
    const asked: string[] = [];
    const gate: Gate = {
      mayUpload: (item) => {
        asked.push(item.objectId);
        return { allowed: false, reason: 'no-consent' };
      },
    };
    const uploader = makeUploader(outbox, cloud.url, { gate });
    uploader.start();
    await waitFor('gate asked', () => asked.length > 0, 5_000);
    uploader.kick();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(cloud.requests()).toBe(0);
    expect(outbox.get(o.objectId)).toMatchObject({ state: 'queued', attempts: 0, lastError: 'gate: no-consent' });
  });

  it('fails clearly when the token file is unreadable', () => {
    const { outbox } = openOutbox();
    const uploader = makeUploader(outbox, 'https://cloud.example', { tokenFile: join(dir, 'missing') });
    expect(() => uploader.start()).toThrow(/token file .*missing cannot be read \(ENOENT\)/);
  });
});

describe('reference receiver', () => {
  let r: Receiver;
  beforeEach(async () => {
    r = await receiver();
  });
  const put = (body: Uint8Array | string, headers: Record<string, string> = {}, path = `${HUB}/${newObjectId()}`) =>
    fetch(`${r.url}/v1/objects/${path}`, { method: 'PUT', body, headers: { authorization: `Bearer ${TOKEN}`, ...headers } });

  it('stores age ciphertext and answers with its id and size; a repeated PUT replaces it', async () => {
    const id = newObjectId();
    const age = await encryptToBuffer([recipient], Buffer.from('hi'));
    const first = await put(age, {}, `${HUB}/${id}`);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ objectId: id, bytes: age.length });
    const again = await encryptToBuffer([recipient], Buffer.from('hello'));
    expect((await put(again, {}, `${HUB}/${id}`)).status).toBe(200);
    expect(readFileSync(cloudFile(id)).equals(again)).toBe(true);
    expect(readdirSync(join(dir, 'cloud', HUB))).toEqual([`${id}.age`]);
  });

  it('answers 415 to a JPEG or text, 401 to a wrong token, 403 to a hub the token is not for, 400/404/405 to bad requests', async () => {
    const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(2000)]);
    const cases: Array<[Promise<Response>, number, string]> = [
      [put(jpeg), 415, 'not_age'],
      [put('just some text\n'), 415, 'not_age'],
      [put('age-encryption.org/v1\n-> X25519 abc\nnot base64!\n--- x\n'), 415, 'not_age'],
      [put(await encryptToBuffer([recipient], Buffer.from('x')), { authorization: 'Bearer wrong' }), 401, 'unauthorized'],
      [put('x', { authorization: '' }), 401, 'unauthorized'],
      [put('x', {}, `hub_x/${newObjectId()}`), 403, 'forbidden'],
      [put('x', {}, `${HUB}/NOT-AN-ID`), 400, 'bad_request'],
      [fetch(`${r.url}/v2/elsewhere`), 404, 'not_found'],
      [fetch(`${r.url}/v1/objects/${HUB}`, { method: 'DELETE' }), 405, 'method_not_allowed'],
    ];
    for (const [response, status, code] of cases) {
      const res = await response;
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect(r.received()).toEqual([]);
    expect(existsSync(join(dir, 'cloud', HUB)) ? readdirSync(join(dir, 'cloud', HUB)) : []).toEqual([]);
  });

  it('refuses bodies over the size limit with 413', async () => {
    const small = await startReceiver({ dir: join(dir, 'small'), maxBodyBytes: 1000 });
    cleanups.push(() => small.close());
    const res = await fetch(`${small.url}/v1/objects/${HUB}/${newObjectId()}`, {
      method: 'PUT',
      body: await encryptToBuffer([recipient], randomBytes(5000)),
    });
    expect(res.status).toBe(413);
  });
});

describe('kill -9 during upload', () => {
  const worker = (options: object) => spawnUplinkWorker(options, (c) => cleanups.push(c));

  it('completes the upload exactly once after a restart', async () => {
    const r = await receiver({ readBytesPerSecond: 1024 * KiB });
    const o = await makeObject(3 * 1024 * KiB);
    const options = { dataDir: join(dir, 'data'), endpoint: r.url, hub: HUB, tokenFile, enqueue: [o] };
    const first = worker(options);
    const hubDir = join(dir, 'cloud', HUB);
    await waitFor('a partial upload at the receiver', () => existsSync(hubDir) && readdirSync(hubDir).some((f) => f.endsWith('.tmp')), 20_000);
    first.kill();
    await first.exited;
    await waitFor('receiver drops the partial file', () => readdirSync(hubDir).length === 0, 5_000);
    expect(r.received()).toEqual([]);
    const second = worker(options);
    expect(await second.exited).toBe(0);
    expect(second.output()).toMatch(/done .*"uploaded":1/);
    expect(r.received()).toEqual([{ hub: HUB, objectId: o.objectId, bytes: o.bytes }]);
    expect(readFileSync(cloudFile(o.objectId)).equals(readFileSync(o.path))).toBe(true);
  });
});
