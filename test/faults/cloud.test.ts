import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encryptStream } from '../../src/crypto/age-stream.js';
import { pseudonym } from '../../src/crypto/pseudonym.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { silentLogger } from '../../src/log.js';
import { allowAllGate } from '../harness/allow-all-gate.js';
import { startReceiver, type Receiver } from '../../src/receiver/server.js';
import { hashToken, newToken, parseTokensFile } from '../../src/receiver/tokens.js';
import { openDatabase } from '../../src/store/database.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { Outbox, type OutboxEntry } from '../../src/uplink/outbox.js';
import { HttpReceiverStore, type HttpReceiverStoreOptions } from '../../src/uplink/http-receiver-store.js';
import { Uploader, type UploaderOptions, type UploadReport } from '../../src/uplink/uploader.js';
import { startFaultyCloud, type Fault, type FaultyCloud } from '../harness/faulty-cloud.js';
import { waitFor } from '../harness/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const HUB = pseudonym(randomBytes(32), 'hub', 'faults');
const TOKEN = newToken();
/** The one clock the outbox, the uploader and the hostile cloud all read. */
const clock = (): number => Date.now();

let recipient: string;
let dir: string;
let tokenFile: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  recipient = await identityToRecipient(await generateX25519Identity());
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'camveil-cloud-faults-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

async function makeObject(size: number): Promise<OutboxEntry> {
  const objectId = newObjectId();
  mkdirSync(join(dir, 'objects'), { recursive: true });
  const path = join(dir, 'objects', `${objectId}.age`);
  await pipeline(encryptStream([recipient], randomBytes(size)), createWriteStream(path));
  return { objectId, path, bytes: statSync(path).size, kind: 'clip' };
}

async function receiver(extra: { port?: number; readBytesPerSecond?: number } = {}): Promise<Receiver> {
  const tokens = parseTokensFile(JSON.stringify({ version: 1, hubs: { [HUB]: { upload: hashToken(TOKEN) } } }), 'tokens.json');
  const r = await startReceiver({ dir: join(dir, 'cloud'), tokens, ...extra });
  cleanups.push(() => r.close());
  return r;
}

async function hostile(upstream: Receiver, plan: (n: { overall: number; forObject: number }, objectId: string) => Fault): Promise<FaultyCloud> {
  const cloud = await startFaultyCloud({ upstream: upstream.url, plan, clock });
  cleanups.push(() => cloud.close());
  return cloud;
}

function setUp(endpoint: string, objects: OutboxEntry[], extra: Partial<UploaderOptions> & Pick<HttpReceiverStoreOptions, 'requestTimeoutMs'> = {}) {
  const db = openDatabase(join(dir, 'data'));
  cleanups.push(() => {
    if (db.open) db.close();
  });
  const outbox = new Outbox(db, { now: clock });
  for (const o of objects) outbox.enqueue(o);
  const reports: UploadReport[] = [];
  const { requestTimeoutMs, ...scheduling } = extra;
  const remote = new HttpReceiverStore({ endpoint: validateEndpoint(endpoint), hubPseudonym: HUB, tokenFile, now: clock, ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }) });
  const uploader = new Uploader({
    outbox,
    gate: allowAllGate,
    remote,
    logger: silentLogger(),
    backoffBaseMs: 50,
    backoffCapMs: 400,
    now: clock,
    onOutcome: (r) => reports.push(r),
    ...scheduling,
  });
  cleanups.push(() => uploader.stop());
  return { outbox, uploader, reports };
}

/** Every object is at the receiver exactly once, byte for byte, with nothing half-written beside it, and marked uploaded. */
function expectDeliveredOnce(outbox: Outbox, objects: OutboxEntry[]): void {
  const hubDir = join(dir, 'cloud', HUB);
  expect(readdirSync(hubDir).sort()).toEqual(objects.map((o) => `${o.objectId}.age`).sort());
  for (const o of objects) {
    expect(readFileSync(join(hubDir, `${o.objectId}.age`)).equals(readFileSync(o.path))).toBe(true);
    expect(outbox.get(o.objectId)?.state).toBe('uploaded');
  }
  expect(outbox.stats()).toMatchObject({ queued: 0, uploading: 0, failed: 0, uploaded: objects.length });
}

const uploadedAll = (outbox: Outbox, n: number) => () => outbox.stats().uploaded === n;

describe('cloud faults against a hostile cloud on loopback', () => {
  it('500s: each object is retried with backoff until it is stored, once', async () => {
    const r = await receiver();
    const cloud = await hostile(r, (n) => (n.forObject <= 2 ? { kind: 'status', status: 500 } : { kind: 'pass' }));
    const objects = [await makeObject(40 * KiB), await makeObject(1 * KiB), await makeObject(100 * KiB)];
    const { outbox, uploader, reports } = setUp(cloud.url, objects);
    uploader.start();
    await waitFor('all uploaded', uploadedAll(outbox, 3), 60_000);
    expectDeliveredOnce(outbox, objects);
    for (const o of objects) {
      expect(reports.filter((x) => x.objectId === o.objectId).map((x) => [x.result, x.code])).toEqual([
        ['retry', 'CAMVEIL_E_UPLOAD_FAILED'],
        ['retry', 'CAMVEIL_E_UPLOAD_FAILED'],
        ['uploaded', undefined],
      ]);
      expect(outbox.get(o.objectId)?.attempts).toBe(3);
    }
    expect(r.received().map((x) => x.objectId).sort()).toEqual(objects.map((o) => o.objectId).sort());
  });

  it.each([
    ['delta-seconds', (answerAt: number) => ({ header: '2', notBefore: answerAt + 2000 })],
    [
      'an HTTP date',
      (answerAt: number) => {
        const header = new Date(answerAt + 3000).toUTCString();
        return { header, notBefore: Date.parse(header) };
      },
    ],
  ])('429 with Retry-After as %s: the outbox schedules no earlier, and the cloud sees no request before it', async (_form, retryAfter) => {
    const r = await receiver();
    let notBefore = 0;
    const cloud = await hostile(r, (n) => {
      if (n.overall !== 1) return { kind: 'pass' };
      const ra = retryAfter(clock());
      notBefore = ra.notBefore;
      return { kind: 'status', status: 429, headers: { 'retry-after': ra.header } };
    });
    const objects = [await makeObject(10 * KiB), await makeObject(10 * KiB), await makeObject(10 * KiB)];
    const { outbox, uploader } = setUp(cloud.url, objects);
    uploader.start();
    await waitFor('the 429 recorded', () => outbox.get(objects[0]!.objectId)?.attempts === 1, 30_000);
    const limited = outbox.get(objects[0]!.objectId)!;
    expect(limited).toMatchObject({ state: 'queued', lastErrorCode: 'CAMVEIL_E_UPLOAD_FAILED' });
    expect(limited.lastError).toMatch(/^HTTP 429/);
    // Scheduled by the same clock the server answered with, not before the time the server named.
    expect(limited.nextAttemptAt).toBeGreaterThanOrEqual(notBefore);
    // The other two were due at once, but the server asked for a pause: they wait as well.
    for (const o of objects.slice(1)) expect(outbox.get(o.objectId)).toMatchObject({ state: 'queued', attempts: 0 });
    await waitFor('all uploaded', uploadedAll(outbox, 3), 60_000);
    expectDeliveredOnce(outbox, objects);
    const seen = cloud.requests();
    expect(seen).toHaveLength(4);
    for (const later of seen.slice(1)) expect(later.at).toBeGreaterThanOrEqual(notBefore);
  });

  it('a slow answer: the idle limit cuts a stalled or trickling receipt, the PUT is repeated and the object is stored once', async () => {
    const r = await receiver();
    const cloud = await hostile(r, (n) =>
      n.forObject === 1 ? { kind: 'stall-answer' } : n.forObject === 2 ? { kind: 'stall-answer', trickleMs: 100 } : { kind: 'pass' },
    );
    const objects = [await makeObject(64 * KiB)];
    const { outbox, uploader, reports } = setUp(cloud.url, objects, { requestTimeoutMs: 1500 });
    uploader.start();
    await waitFor('uploaded', uploadedAll(outbox, 1), 60_000);
    expect(reports.map((x) => [x.result, x.message])).toEqual([
      ['retry', 'request timed out (no progress for 1500 ms)'],
      ['retry', 'response body not complete within 1500 ms'],
      ['uploaded', undefined],
    ]);
    // The receiver took the same PUT three times: it replaced the object, it did not keep three.
    expect(r.received().map((x) => x.objectId)).toEqual([objects[0]!.objectId, objects[0]!.objectId, objects[0]!.objectId]);
    expectDeliveredOnce(outbox, objects);
  });

  it('a slow reader: an upload taking well over the time limit still completes at its first attempt (the limit is idle, not total)', async () => {
    const r = await receiver({ readBytesPerSecond: 4 * MiB });
    const objects = [await makeObject(32 * MiB)];
    const { outbox, uploader, reports } = setUp(r.url, objects, { requestTimeoutMs: 3000 });
    const started = clock();
    uploader.start();
    await waitFor('uploaded', uploadedAll(outbox, 1), 120_000);
    const took = clock() - started;
    console.info(`slow reader: ${objects[0]!.bytes} bytes at 4 MiB/s in ${took} ms with a 3000 ms idle limit`);
    expect(reports.map((x) => x.result)).toEqual(['uploaded']);
    expect(took).toBeGreaterThan(3000); // so a 3 s total limit would have cut it
    expectDeliveredOnce(outbox, objects);
  }, 180_000);

  it('a wrong receipt is CAMVEIL_E_CLOUD_PROTOCOL, retried and never marked uploaded until a right one', async () => {
    const r = await receiver();
    const cloud = await hostile(r, (n) => {
      if (n.forObject === 1) return { kind: 'wrong-receipt', receipt: (objectId, bytes) => ({ objectId, bytes: bytes - 1 }) };
      if (n.forObject === 2) return { kind: 'wrong-receipt', receipt: (_id, bytes) => ({ objectId: newObjectId(), bytes }) };
      if (n.forObject === 3) return { kind: 'wrong-receipt', receipt: (objectId, bytes) => ({ objectId, bytes, stored: 'yes' }) };
      return { kind: 'pass' };
    });
    const objects = [await makeObject(20 * KiB), await makeObject(3 * KiB)];
    const { outbox, uploader, reports } = setUp(cloud.url, objects);
    uploader.start();
    await waitFor('all uploaded', uploadedAll(outbox, 2), 60_000);
    for (const o of objects) {
      const mine = reports.filter((x) => x.objectId === o.objectId);
      expect(mine.map((x) => [x.result, x.code])).toEqual([
        ['retry', 'CAMVEIL_E_CLOUD_PROTOCOL'],
        ['retry', 'CAMVEIL_E_CLOUD_PROTOCOL'],
        ['retry', 'CAMVEIL_E_CLOUD_PROTOCOL'],
        ['uploaded', undefined],
      ]);
      expect(mine[0]!.message).toMatch(/bytes: \d+ stored, \d+ sent/);
      expect(mine[1]!.message).toMatch(/objectId: does not match/);
      expect(mine[2]!.message).toMatch(/receipt is invalid/);
    }
    expectDeliveredOnce(outbox, objects);
  });

  it('a connection closed mid-upload: retried, nothing half-written kept at the receiver, stored once', async () => {
    const r = await receiver();
    const cloud = await hostile(r, (n) => (n.forObject <= 2 ? { kind: 'close-mid-upload', afterBytes: 64 * KiB } : { kind: 'pass' }));
    const objects = [await makeObject(512 * KiB), await makeObject(300 * KiB)];
    const { outbox, uploader, reports } = setUp(cloud.url, objects);
    uploader.start();
    await waitFor('all uploaded', uploadedAll(outbox, 2), 60_000);
    for (const o of objects) {
      const mine = reports.filter((x) => x.objectId === o.objectId);
      expect(mine.map((x) => x.result)).toEqual(['retry', 'retry', 'uploaded']);
      expect(mine[0]!.message).toMatch(/^network error/);
    }
    await waitFor('no partial file at the receiver', () => readdirSync(join(dir, 'cloud', HUB)).every((f) => !f.endsWith('.tmp')), 30_000);
    expect(r.received().map((x) => x.objectId).sort()).toEqual(objects.map((o) => o.objectId).sort());
    expectDeliveredOnce(outbox, objects);
  });
});

describe('drain after a receiver outage', () => {
  /** Four objects that failed against a stopped receiver, each now backing off for 300 s; returns the port it had. */
  async function outage(extra: Partial<UploaderOptions>) {
    // A port the receiver will come back on; nothing listens there meanwhile.
    const probe = await startReceiver({ dir: join(dir, 'probe') });
    const port = probe.port;
    await probe.close();
    const objects = [await makeObject(30 * KiB), await makeObject(5 * KiB), await makeObject(60 * KiB), await makeObject(1 * KiB)];
    // A 300 s backoff from the first failure on (base = cap = 600 s, jitter fixed at one half).
    const setup = setUp(`http://127.0.0.1:${port}`, objects, { backoffBaseMs: 600_000, backoffCapMs: 600_000, random: () => 0.5, ...extra });
    setup.uploader.start();
    await waitFor('every object failed once', () => objects.every((o) => setup.outbox.get(o.objectId)?.attempts === 1), 30_000);
    const scheduled = new Map(objects.map((o) => [o.objectId, setup.outbox.get(o.objectId)!.nextAttemptAt]));
    for (const o of objects) expect(setup.outbox.get(o.objectId)?.lastError).toMatch(/^network error/);
    return { ...setup, port, objects, scheduled };
  }

  it('a fresh upload that succeeds makes every backed-off item due at once, drained in queue order', async () => {
    const { outbox, uploader, port, objects, scheduled } = await outage({ probeIntervalMs: 3_600_000 });
    const r = await receiver({ port });
    const back = clock();
    const fresh = await makeObject(2 * KiB);
    outbox.enqueue(fresh);
    uploader.kick();
    await waitFor('fresh and backed-off objects uploaded', uploadedAll(outbox, 5), 45_000);
    const drained = clock();
    console.info(
      `drain after outage (fresh upload): ${drained - back} ms after the receiver returned; without the reset the last would have waited ${Math.max(...scheduled.values()) - back} ms`,
    );
    for (const at of scheduled.values()) expect(at).toBeGreaterThan(drained);
    expect(r.received().map((x) => x.objectId)).toEqual([fresh.objectId, ...objects.map((o) => o.objectId)]);
    expectDeliveredOnce(outbox, [fresh, ...objects]);
  });

  it('with nothing new to send, a probe finds the receiver back and the queue drains without waiting out any backoff', async () => {
    const { outbox, port, objects, scheduled } = await outage({ probeIntervalMs: 1000 });
    const r = await receiver({ port });
    const back = clock();
    await waitFor('backed-off objects uploaded', uploadedAll(outbox, 4), 45_000);
    const drained = clock();
    console.info(
      `drain after outage (probe every 1 s): ${drained - back} ms after the receiver returned; without the reset the last would have waited ${Math.max(...scheduled.values()) - back} ms`,
    );
    for (const at of scheduled.values()) expect(at).toBeGreaterThan(drained);
    expect(r.received().map((x) => x.objectId).sort()).toEqual(objects.map((o) => o.objectId).sort());
    expectDeliveredOnce(outbox, objects);
  });
});
