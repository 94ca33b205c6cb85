import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { AuditLog } from '../src/audit/audit-log.js';
import { encryptToBuffer } from '../src/crypto/age-stream.js';
import { newObjectId } from '../src/crypto/sealed-object.js';
import { silentLogger } from '../src/log.js';
import { ConsentLedger } from '../src/policy/consent-ledger.js';
import { ConsentService, localRequest } from '../src/policy/consent-service.js';
import { PolicyGate } from '../src/policy/gate.js';
import { SHIPPED_POLICY_VERSIONS } from '../src/policy/policy-history.js';
import { startReceiver } from '../src/receiver/server.js';
import { openDatabase } from '../src/store/database.js';
import { cutUploads } from '../src/uplink/local-only.js';
import { Outbox } from '../src/uplink/outbox.js';
import { HttpReceiverStore } from '../src/uplink/http-receiver-store.js';
import type { RemoteObjectStore } from '../src/uplink/remote-object-store.js';
import { S3ObjectStore } from '../src/uplink/s3-object-store.js';
import { Uploader } from '../src/uplink/uploader.js';
import { startSwift, SWIFT_ACCESS_KEY, SWIFT_SECRET_KEY } from '../test/harness/swift.js';

/**
 * `npm run bench -- withdrawal`: how fast withdrawing cloudUpload stops the bytes, for each uplink
 * transport. Each trial queues an age object, lets its upload run (capped, so it is mid-flight), withdraws
 * cloudUpload through the same ConsentService and enforcement (`cutUploads`) the gateway uses, and watches
 * the bytes a TCP relay in front of the server forwards. Reported: time from the withdrawal call to the
 * last byte of the object the server sees (PUT bodies: PutObject, UploadPart, the receiver's PUT) and to
 * the last byte of any kind (which includes the small requests that follow a cut, such as the s3
 * transport's AbortMultipartUpload), p50, p99 and max; and bytes the server saw after the withdrawal call
 * returned. The relay runs in its own process and stamps each chunk with the machine's clock as it reads
 * it (goal: p99 < 100 ms to the object's last byte, zero bytes after the return).
 *  - `http`: a 4 MiB object to the directory receiver, capped at 2 MiB/s, cut in its first half;
 *  - `s3`: a 16 MiB object (a multipart upload of 8 MiB parts) to the local Swift (test/harness/swift.ts),
 *    capped at 2 MiB/s, cut anywhere in its first 90 % (so in either part or between them); after each trial, whether a multipart upload is left open on the server (ListMultipartUploads,
 *    asked directly, not through the relay), and how long it took to go.
 * CAMVEIL_BENCH_TRIALS sets the number of trials per transport (default 100), CAMVEIL_BENCH_TRANSPORTS a
 * comma-separated subset of `http,s3`, CAMVEIL_BENCH_S3_MIB the s3 object's size.
 */

const HUB = 'hub_aaaaaaaaaaaaaaaa';
const CAP = 2 * 2 ** 20;

interface Chunk {
  /** Absolute time (ms, sub-ms resolution) the relay read it. */
  t: number;
  n: number;
  /** Part of a PUT (an object's bytes: PutObject, UploadPart, the receiver's PUT), not a small request around it. */
  object: boolean;
  /** When the chunk begins a request: its method and query parameter names (`DELETE ?uploadId`). */
  begins?: string;
}

interface Relay {
  port: number;
  /** Every chunk forwarded to the server. */
  chunks: Chunk[];
  close(): void;
}

/** `PUT /bucket/key?partNumber=2&uploadId=x` → `PUT ?partNumber&uploadId`: the kind of request, no names. */
function requestLabel(line: string): string {
  const [method, target = ''] = line.split(' ');
  const query = target.includes('?') ? target.slice(target.indexOf('?') + 1) : '';
  const names = query === '' ? [] : query.split('&').map((kv) => kv.split('=')[0]);
  return names.length === 0 ? `${method}` : `${method} ?${names.join('&')}`;
}

/** Starts bench/tcp-relay.ts in its own process in front of the server. */
function startRelay(targetPort: number): Promise<Relay> {
  const child = fork(fileURLToPath(new URL('./tcp-relay.ts', import.meta.url)), [String(targetPort)], { execArgv: ['--import', 'tsx'] });
  const chunks: Chunk[] = [];
  /** The request each connection is sending now (a chunk carries the line when it begins one). */
  const request = new Map<number, string>();
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (m: { port?: number; t?: number; n?: number; c?: number; req?: string }) => {
      if (m.port !== undefined) resolve({ port: m.port, chunks, close: () => child.disconnect() });
      else if (m.t !== undefined && m.n !== undefined && m.c !== undefined) {
        if (m.req !== undefined) request.set(m.c, m.req);
        const object = request.get(m.c)?.startsWith('PUT ') ?? false;
        chunks.push(m.req === undefined ? { t: m.t, n: m.n, object } : { t: m.t, n: m.n, object, begins: requestLabel(m.req) });
      }
    });
  });
}

/** Where a transport's uploads go: the server behind the relay and the store that talks to it. */
interface Target {
  objectBytes: number;
  /** The withdrawal comes once 256 KiB plus a random share, up to this, of the object went through. */
  cutWithin: number;
  /** The port the relay forwards to. */
  port: number;
  store(relayPort: number): RemoteObjectStore;
  /** Objects the server holds complete. */
  completed(): Promise<number>;
  /** Multipart uploads open on the server (s3 only); `abort` ends them, so the next trial starts clean. */
  openMultipart?(abort: boolean): Promise<number>;
  close(): Promise<void>;
}

async function httpTarget(root: string): Promise<Target> {
  const receiver = await startReceiver({ dir: path.join(root, 'cloud'), token: 'bench-token' });
  const tokenFile = path.join(root, 'token');
  writeFileSync(tokenFile, 'bench-token\n', { mode: 0o600 });
  return {
    objectBytes: 4 * 2 ** 20,
    cutWithin: 0.4,
    port: receiver.port,
    store: (relayPort) => new HttpReceiverStore({ endpoint: new URL(`http://127.0.0.1:${relayPort}`), hubPseudonym: HUB, tokenFile, bandwidthBytesPerSecond: CAP }),
    completed: () => Promise.resolve(receiver.received().length),
    close: () => receiver.close(),
  };
}

async function s3Target(root: string): Promise<Target> {
  const swift = await startSwift();
  const bucket = await swift.createBucket('camveil-bench-withdrawal');
  const credentialsFile = path.join(root, 's3.yaml');
  writeFileSync(credentialsFile, `accessKeyId: ${SWIFT_ACCESS_KEY}\nsecretAccessKey: ${SWIFT_SECRET_KEY}\n`, { mode: 0o600 });
  return {
    objectBytes: Number(process.env.CAMVEIL_BENCH_S3_MIB ?? 16) * 2 ** 20,
    port: swift.port,
    // Anywhere from the first part to the last, so that cuts also land between parts.
    cutWithin: 0.9,
    store: (relayPort) =>
      new S3ObjectStore({
        endpoint: `http://127.0.0.1:${relayPort}`,
        region: swift.region,
        bucket,
        prefix: 'bench',
        forcePathStyle: true,
        credentialsFile,
        hubPseudonym: HUB,
        bandwidthBytesPerSecond: CAP,
      }),
    completed: async () => {
      let count = 0;
      let token: string | undefined;
      do {
        const page = await swift.client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        count += page.KeyCount ?? 0;
        token = page.NextContinuationToken;
      } while (token !== undefined);
      return count;
    },
    openMultipart: async (abort) => {
      const open = (await swift.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
      if (abort) for (const u of open) await swift.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
      return open.length;
    },
    close: () => swift.stop(),
  };
}

const now = () => performance.timeOrigin + performance.now();

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function runTrials(target: Target, root: string, trials: number): Promise<object> {
  const relay = await startRelay(target.port);
  const recipient = await identityToRecipient(await generateX25519Identity());
  const payload = await encryptToBuffer([recipient], randomBytes(target.objectBytes));

  const db = openDatabase(path.join(root, 'hub'));
  const audit = new AuditLog(db);
  const ledger = new ConsentLedger(db);
  const inForce = SHIPPED_POLICY_VERSIONS.at(-1)!;
  const gate = new PolicyGate({
    ledger,
    region: 'DE',
    policy: { inForce, history: SHIPPED_POLICY_VERSIONS },
    forcedLocalOnly: false,
    cameras: () => new Map(),
    audit,
    cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
  });
  const outbox = new Outbox(db);
  const uploader = new Uploader({ outbox, gate, remote: target.store(relay.port), logger: silentLogger() });
  const consent = new ConsentService({
    db,
    ledger,
    gate,
    audit,
    policyVersion: inForce.version,
    logger: silentLogger(),
    enforce: async (change) => {
      if (change.to === 'local-only') await cutUploads(uploader, outbox, change.reason);
    },
  });
  await consent.start();
  await consent.acceptPolicy(inForce.version, localRequest('bench: accept'));
  uploader.start();

  const toLastByte: number[] = [];
  const toLastObjectByte: number[] = [];
  let objectBytesAfterReturn = 0;
  const r = (x: number) => Math.round(x * 10) / 10;
  /** Trials in which object bytes reached the server after the withdrawal returned: how many, and when. */
  const objectBytesLate: Array<{ bytes: number; sentBeforeCut: number; msCall: number; msToLastObjectByte: number }> = [];
  /** Requests that began after the withdrawal began, by kind. */
  const requestsAfterCut = new Map<string, number>();
  const callMs: number[] = [];
  let bytesAfterReturn = 0;
  let trialsWithBytesAfter = 0;
  /** s3: trials whose multipart upload was still open 150 ms after the withdrawal began / after 5 s more. */
  let multipartOpenAt150ms = 0;
  let multipartOpenAfter5s = 0;
  for (let i = 0; i < trials; i++) {
    await consent.grant('cloudUpload', localRequest(`bench: grant ${i}`));
    const id = newObjectId();
    const file = path.join(root, `${id}.age`);
    writeFileSync(file, payload);
    relay.chunks.length = 0;
    outbox.enqueue({ objectId: id, path: file, bytes: payload.length, kind: 'clip' });
    uploader.kick();
    // Mid-flight: at least 256 KiB through, at a random point of the upload.
    const threshold = 256 * 1024 + Math.random() * payload.length * target.cutWithin;
    while (relay.chunks.reduce((s, c) => s + c.n, 0) < threshold) await new Promise((r) => setTimeout(r, 5));
    const t0 = now();
    await consent.withdraw('cloudUpload', localRequest(`bench: withdraw ${i}`));
    const returned = now();
    callMs.push(returned - t0);
    // Anything still on its way arrives within this.
    await new Promise((r) => setTimeout(r, 150));
    const last = relay.chunks.at(-1)?.t ?? t0;
    toLastByte.push(Math.max(0, last - t0));
    const lastObject = relay.chunks.findLast((c) => c.object)?.t ?? t0;
    toLastObjectByte.push(Math.max(0, lastObject - t0));
    const afterChunks = relay.chunks.filter((c) => c.t > returned);
    const after = afterChunks.reduce((s, c) => s + c.n, 0);
    bytesAfterReturn += after;
    const objectAfter = afterChunks.filter((c) => c.object).reduce((s, c) => s + c.n, 0);
    objectBytesAfterReturn += objectAfter;
    if (objectAfter > 0) {
      const sentBefore = relay.chunks.filter((c) => c.object && c.t <= t0).reduce((s, c) => s + c.n, 0);
      objectBytesLate.push({ bytes: objectAfter, sentBeforeCut: sentBefore, msCall: r(returned - t0), msToLastObjectByte: r(lastObject - t0) });
    }
    if (after > 0) trialsWithBytesAfter += 1;
    for (const c of relay.chunks) if (c.t > t0 && c.begins !== undefined) requestsAfterCut.set(c.begins, (requestsAfterCut.get(c.begins) ?? 0) + 1);
    if (target.openMultipart !== undefined && (await target.openMultipart(false)) > 0) {
      multipartOpenAt150ms += 1;
      const until = Date.now() + 5_000;
      while (Date.now() < until && (await target.openMultipart(false)) > 0) await new Promise((r) => setTimeout(r, 50));
      if ((await target.openMultipart(true)) > 0) multipartOpenAfter5s += 1;
    }
  }
  consent.stop();
  await uploader.stop();
  relay.close();
  const stats = outbox.stats();
  db.close();
  const calls = [...callMs].sort((a, b) => a - b);
  const spread = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)), max: r(sorted.at(-1) ?? NaN) };
  };
  return {
    trials,
    objectBytes: payload.length,
    uploadCapBytesPerSecond: CAP,
    cutBetweenBytes: [256 * 1024, Math.round(256 * 1024 + payload.length * target.cutWithin)],
    msFromWithdrawalToLastObjectByte: spread(toLastObjectByte),
    msFromWithdrawalToLastByte: spread(toLastByte),
    msWithdrawalCall: { p50: r(percentile(calls, 50)), p99: r(percentile(calls, 99)) },
    objectBytesReceivedAfterWithdrawalReturned: objectBytesAfterReturn,
    trialsWithObjectBytesAfterReturn: objectBytesLate,
    bytesReceivedAfterWithdrawalReturned: bytesAfterReturn,
    requestsBegunAfterWithdrawalBegan: Object.fromEntries(requestsAfterCut),
    trialsWithBytesAfterReturn: trialsWithBytesAfter,
    uploadsCompleted: await target.completed(),
    ...(target.openMultipart === undefined ? {} : { trialsWithMultipartOpenAt150ms: multipartOpenAt150ms, trialsWithMultipartOpenAfter5s: multipartOpenAfter5s }),
    outboxAfter: stats,
  };
}

export async function benchWithdrawal(): Promise<object> {
  const trials = Number(process.env.CAMVEIL_BENCH_TRIALS ?? 100);
  const transports = (process.env.CAMVEIL_BENCH_TRANSPORTS ?? 'http,s3').split(',').map((t) => t.trim());
  const results: Record<string, object> = {};
  for (const transport of transports) {
    if (transport !== 'http' && transport !== 's3') throw new Error(`unknown transport ${transport} (http, s3)`);
    const root = mkdtempSync(path.join(os.tmpdir(), `camveil-withdrawal-${transport}-`));
    const target = transport === 'http' ? await httpTarget(root) : await s3Target(root);
    try {
      results[transport] = await runTrials(target, root, trials);
    } finally {
      await target.close();
      rmSync(root, { recursive: true, force: true });
    }
  }
  return results;
}
