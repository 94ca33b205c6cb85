import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decryptToBuffer, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { pseudonym } from '../../src/crypto/pseudonym.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { addHubEntry, hashToken, newToken } from '../../src/receiver/tokens.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { HttpReceiverStore } from '../../src/uplink/http-receiver-store.js';
import { camveilCli } from '../harness/hub-process.js';
import { describeWithPeers } from '../harness/peers.js';
import { startSwift, SWIFT_ACCESS_KEY, SWIFT_SECRET_KEY, type SwiftS3 } from '../harness/swift.js';
import { waitFor } from '../harness/wait.js';

/**
 * `camveil receiver --s3` against the real S3 peer (Debian's Swift with s3api): receivers run as their own
 * processes, hubs upload through the hub's own transport (HttpReceiverStore), and the bucket is read with
 * the SDK. Also `--presign`: the body goes from the hub straight to the store under a presigned PUT that
 * the store refuses for another key, another size, or after expiry.
 */
const BIN = fileURLToPath(new URL('../../bin/camveil.js', import.meta.url));
const HUB_A = pseudonym(randomBytes(32), 'hub', 'a');
const HUB_B = pseudonym(randomBytes(32), 'hub', 'b');
const PREFIX = 'provider/v1';

const dir = mkdtempSync(join(tmpdir(), 'camveil-rs3-'));
const A = { upload: newToken(), read: newToken() };
const B = { upload: newToken() };
let tokensFile: string;
let credentialsFile: string;
let recipient: string;
let identity: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  tokensFile = join(dir, 'tokens.json');
  await addHubEntry(tokensFile, HUB_A, { upload: hashToken(A.upload), read: hashToken(A.read) });
  await addHubEntry(tokensFile, HUB_B, { upload: hashToken(B.upload) });
  credentialsFile = join(dir, 's3.yaml');
  writeFileSync(credentialsFile, `accessKeyId: "${SWIFT_ACCESS_KEY}"\nsecretAccessKey: ${SWIFT_SECRET_KEY}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'a.token'), `${A.upload}\n`, { mode: 0o600 });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface RunningReceiver {
  url: string;
  /** Its stdout so far (JSON log lines and the URL). */
  output(): string;
}

/** `camveil receiver …` as its own process; resolves once it prints its URL; stopped after the test. */
async function startCliReceiver(args: string[]): Promise<RunningReceiver> {
  const child: ChildProcess = spawn(process.execPath, [BIN, 'receiver', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  const urlLine = () => out.split('\n').find((line) => line.startsWith('http://'));
  await waitFor(`receiver URL (stderr: ${err})`, () => urlLine() !== undefined || child.exitCode !== null, 60_000);
  if (urlLine() === undefined) throw new Error(`receiver exited ${child.exitCode}: ${err}`);
  return { url: urlLine()!, output: () => out };
}

function s3Args(swiftEndpoint: string, bucket: string): string[] {
  return ['--s3', '--s3-endpoint', swiftEndpoint, '--s3-region', 'us-east-1', '--s3-bucket', bucket, '--s3-prefix', PREFIX, '--s3-path-style', '--s3-credentials', credentialsFile, '--tokens', tokensFile];
}

/** Hub A's own upload transport toward `url`. */
function hubStore(url: string): HttpReceiverStore {
  const store = new HttpReceiverStore({ endpoint: validateEndpoint(url), hubPseudonym: HUB_A, tokenFile: join(dir, 'a.token') });
  store.open();
  return store;
}

async function sealed(size: number): Promise<Buffer> {
  return encryptToBuffer([recipient], randomBytes(size));
}

/**
 * A TCP relay to Swift that keeps every byte clients send through it: what reached the object store's
 * host, headers included. It leaves the Host header alone, so presigned signatures still match.
 */
async function startRelay(target: number): Promise<{ url: string; sent(): Buffer; close(): Promise<void> }> {
  const chunks: Buffer[] = [];
  const server: Server = createServer((socket) => {
    const upstream = connect(target, '127.0.0.1');
    socket.on('data', (d: Buffer) => chunks.push(Buffer.from(d)));
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => Buffer.concat(chunks),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describeWithPeers(['swift'], 'camveil receiver --s3 on the real S3 peer', () => {
  let swift: SwiftS3;
  beforeAll(async () => {
    swift = await startSwift();
  }, 120_000);
  afterAll(async () => {
    await swift?.stop();
  });

  async function bucketKeys(bucket: string): Promise<Array<[string | undefined, number | undefined]>> {
    const listed = await swift.client.send(new ListObjectsV2Command({ Bucket: bucket }));
    return (listed.Contents ?? []).map((o) => [o.Key, o.Size]);
  }
  async function bucketObject(bucket: string, key: string): Promise<Buffer> {
    const got = await swift.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await got.Body!.transformToByteArray());
  }
  const keyOf = (id: string) => `${PREFIX}/${HUB_A}/${id}.age`;
  const never = new AbortController().signal;

  it('two receivers on one bucket behave as one: upload through either, list, read and delete through the other', async () => {
    const bucket = await swift.createBucket();
    const [r1, r2] = await Promise.all([startCliReceiver(s3Args(swift.endpoint, bucket)), startCliReceiver(s3Args(swift.endpoint, bucket))]);
    const small = await sealed(1000);
    const large = await sealed(20 * 1024 * 1024 + 5); // over the 8 MiB part size: a multipart upload from the receiver
    const [idSmall, idLarge] = [newObjectId(), newObjectId()];
    const via1 = hubStore(r1.url);
    const via2 = hubStore(r2.url);
    expect(await via1.put({ objectId: idSmall, bytes: small.length }, small, never)).toEqual({ kind: 'uploaded' });
    expect(await via2.put({ objectId: idLarge, bytes: large.length }, large, never)).toEqual({ kind: 'uploaded' });

    // Byte-identical in the bucket, under <prefix>/<hub>/<id>.age and nothing else; still opens with the household key.
    expect((await bucketKeys(bucket)).sort()).toEqual(
      [
        [keyOf(idSmall), small.length],
        [keyOf(idLarge), large.length],
      ].sort(),
    );
    expect((await bucketObject(bucket, keyOf(idSmall))).equals(small)).toBe(true);
    expect((await bucketObject(bucket, keyOf(idLarge))).equals(large)).toBe(true);
    expect((await decryptToBuffer(identity, small)).length).toBe(1000);

    // Either receiver lists what the other stored; a household read token fetches through the other one.
    const listed1 = await via1.list();
    expect(listed1.map((o) => [o.objectId, o.bytes]).sort()).toEqual([
      [idSmall, small.length],
      [idLarge, large.length],
    ].sort());
    expect((await via2.list()).map((o) => o.objectId).sort()).toEqual(listed1.map((o) => o.objectId).sort());
    const fetched = await fetch(`${r1.url}/v1/objects/${HUB_A}/${idLarge}`, { headers: { authorization: `Bearer ${A.read}` } });
    expect(fetched.status).toBe(200);
    expect(Buffer.from(await fetched.arrayBuffer()).equals(large)).toBe(true);

    // Deleted through r2, gone for r1 (404 on a second delete, absent from its listing and from the bucket).
    expect(await via2.delete([idSmall])).toEqual({ deleted: [idSmall], failed: [] });
    const again = await fetch(`${r1.url}/v1/objects/${HUB_A}/${idSmall}`, { method: 'DELETE', headers: { authorization: `Bearer ${A.upload}` } });
    expect(again.status).toBe(404);
    expect((await via1.list()).map((o) => o.objectId)).toEqual([idLarge]);
    expect(await bucketKeys(bucket)).toEqual([[keyOf(idLarge), large.length]]);

    // The checks stay in front of the bucket: plaintext is refused, another hub's token is refused, nothing lands.
    const plain = await fetch(`${r2.url}/v1/objects/${HUB_A}/${newObjectId()}`, {
      method: 'PUT',
      body: Buffer.from('a plain JPEG, not ciphertext'.repeat(100)),
      headers: { authorization: `Bearer ${A.upload}` },
    });
    expect(plain.status).toBe(415);
    const foreign = await fetch(`${r1.url}/v1/objects/${HUB_A}/${newObjectId()}`, { method: 'PUT', body: small, headers: { authorization: `Bearer ${B.upload}` } });
    expect(foreign.status).toBe(403);
    expect(await bucketKeys(bucket)).toEqual([[keyOf(idLarge), large.length]]);
  }, 180_000);

  it('a hub that goes away mid-multipart leaves no object and no open multipart upload in the bucket', async () => {
    const bucket = await swift.createBucket();
    const r = await startCliReceiver(s3Args(swift.endpoint, bucket));
    const body = await sealed(24 * 1024 * 1024);
    const req = request(`${r.url}/v1/objects/${HUB_A}/${newObjectId()}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${A.upload}`, 'content-length': String(body.length) },
    });
    req.on('error', () => undefined);
    req.write(body.subarray(0, 16 * 1024 * 1024));
    const openUploads = async () => (await swift.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0;
    let open = 0;
    // The receiver has begun a multipart upload (its first 8 MiB part is on the way) before the hub goes.
    const deadline = Date.now() + 60_000;
    while ((open = await openUploads()) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(open).toBe(1);
    req.destroy();
    const gone = Date.now() + 60_000;
    while ((open = await openUploads()) > 0 && Date.now() < gone) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(open).toBe(0);
    expect(await bucketKeys(bucket)).toEqual([]);
  }, 180_000);

  it('--presign: the hub sends the body straight to the store, without its bearer token; the receiver holds no byte of it', async () => {
    const bucket = await swift.createBucket();
    const relay = await startRelay(swift.port);
    cleanups.push(() => relay.close());
    const r = await startCliReceiver([...s3Args(relay.url, bucket), '--presign']);
    const store = hubStore(r.url);
    // A receiver that presigns says so on every answer; the hub asks for a presign from then on.
    expect(await store.list()).toEqual([]);
    const body = await sealed(3 * 1024 * 1024);
    const id = newObjectId();
    expect(await store.put({ objectId: id, bytes: body.length }, body, never)).toEqual({ kind: 'uploaded' });
    expect((await bucketObject(bucket, keyOf(id))).equals(body)).toBe(true);

    const sent = relay.sent().toString('latin1');
    expect(sent).toContain(`PUT /${bucket}/${PREFIX}/${HUB_A}/${id}.age?`);
    expect(sent).toContain('X-Amz-Signature=');
    expect(sent).not.toContain(A.upload);
    expect(sent.toLowerCase()).not.toContain('authorization: bearer');
    await waitFor('presign logged', () => r.output().includes('upload presigned'), 30_000);
    expect(r.output()).not.toContain('object stored');
    // The URL (and its signature) never reaches the receiver's log.
    expect(r.output()).not.toContain('X-Amz-Signature');

    // Hubs that do not ask (older ones) still upload through the receiver, age-checked.
    const plain = await fetch(`${r.url}/v1/objects/${HUB_A}/${newObjectId()}`, { method: 'PUT', body: Buffer.from('plaintext '.repeat(50)), headers: { authorization: `Bearer ${A.upload}` } });
    expect(plain.status).toBe(415);
    expect(plain.headers.get('camveil-uploads')).toBe('presign');
  }, 180_000);

  it('--presign: the store refuses a presigned URL for another key or another size, and after it expired; a wrong token gets none', async () => {
    const bucket = await swift.createBucket();
    const r = await startCliReceiver([...s3Args(swift.endpoint, bucket), '--presign', '--presign-expiry', '1']);
    const id = newObjectId();
    const body = await sealed(2000);
    const ask = (token: string | undefined, bytes = body.length) =>
      fetch(`${r.url}/v1/uploads/${HUB_A}/${id}`, {
        method: 'POST',
        body: JSON.stringify({ bytes }),
        headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      });

    const none = await ask(undefined);
    expect(none.status).toBe(401);
    expect(await none.text()).not.toContain('X-Amz');
    const foreign = await ask(B.upload);
    expect(foreign.status).toBe(403);
    expect(await foreign.text()).not.toContain('X-Amz');
    const readOnly = await ask(A.read);
    expect(readOnly.status).toBe(403);

    const answer = (await (await ask(A.upload)).json()) as { url: string; method: string; headers: Record<string, string>; expiresAt: string };
    expect(answer.method).toBe('PUT');
    expect(answer.headers).toEqual({ 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
    const put = (url: string, bytes: Buffer) => fetch(url, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    // Another key under the same signature; the same key with one byte more: refused by the store.
    const otherKey = answer.url.replace(`/${id}.age?`, `/${newObjectId()}.age?`);
    expect(otherKey).not.toBe(answer.url);
    expect((await put(otherKey, body)).status).toBe(403);
    expect((await put(answer.url, Buffer.concat([body, Buffer.from([0])]))).status).toBe(403);
    expect(await bucketKeys(bucket)).toEqual([]);

    // Long after its one second: refused. (Only the late use is asserted, never a window.)
    const late = (await (await ask(A.upload)).json()) as { url: string };
    await new Promise((resolve) => setTimeout(resolve, 6000));
    const expired = await put(late.url, body);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(/expired/i);
    expect(await bucketKeys(bucket)).toEqual([]);
  }, 180_000);

  it('refuses to start on a bucket that does not exist, naming it, exit 2', async () => {
    const r = await camveilCli(['receiver', ...s3Args(swift.endpoint, 'no-such-bucket-here')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no-such-bucket-here');
    expect(r.stderr).toMatch(/does not exist/);
    expect(r.stderr + r.stdout).not.toContain(SWIFT_SECRET_KEY);
  }, 120_000);
});

describe('camveil receiver --s3: argument errors', () => {
  const base = ['receiver', '--open'];
  const cases: Array<[string, string[], RegExp]> = [
    ['--s3 without its required options', ['--s3'], /--s3 needs --s3-region, --s3-bucket, --s3-credentials/],
    ['--dir together with --s3', ['--dir', dir, '--s3', '--s3-region', 'us-east-1', '--s3-bucket', 'b12', '--s3-credentials', 'x'], /--dir or --s3, not both/],
    ['--presign without --s3', ['--dir', dir, '--presign'], /--presign: only with --s3/],
    ['--s3-bucket without --s3', ['--dir', dir, '--s3-bucket', 'b12'], /--s3-bucket: only with --s3/],
    ['--presign-expiry without --presign', ['--s3', '--s3-region', 'us-east-1', '--s3-bucket', 'b12', '--s3-credentials', 'x', '--presign-expiry', '60'], /--presign-expiry: only with --presign/],
    ['--presign-expiry over an hour', ['--s3', '--s3-region', 'us-east-1', '--s3-bucket', 'b12', '--s3-credentials', 'x', '--presign', '--presign-expiry', '7200'], /--presign-expiry must be/],
    ['plain http to a remote endpoint', ['--s3', '--s3-endpoint', 'http://s3.example.net', '--s3-region', 'us-east-1', '--s3-bucket', 'b12', '--s3-credentials', 'x'], /--s3-endpoint.*must be https/],
    ['a bucket name S3 does not allow', ['--s3', '--s3-region', 'us-east-1', '--s3-bucket', 'Not_A_Bucket', '--s3-credentials', 'x'], /--s3-bucket "Not_A_Bucket" must be lower-case letters, digits, dots and hyphens/],
    ['a prefix with a leading slash', ['--s3', '--s3-region', 'us-east-1', '--s3-bucket', 'b12', '--s3-prefix', '/p', '--s3-credentials', 'x'], /--s3-prefix "\/p"/],
  ];
  for (const [what, args, message] of cases) {
    it(`${what}: exit 2 naming the problem`, async () => {
      const r = await camveilCli([...base, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }, 60_000);
  }

  it('a credentials file others can read: exit 2 naming the file and chmod 600, never its content', async () => {
    const file = join(dir, 'open-creds.yaml');
    writeFileSync(file, 'accessKeyId: AKIAVISIBLE\nsecretAccessKey: very-secret-value\n');
    chmodSync(file, 0o644);
    const r = await camveilCli([...base, '--s3', '--s3-region', 'us-east-1', '--s3-bucket', 'b12', '--s3-credentials', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('chmod 600');
    expect(r.stderr + r.stdout).not.toContain('very-secret-value');
  }, 60_000);
});
