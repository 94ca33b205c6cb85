import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { encryptToBuffer } from '../src/crypto/age-stream.js';
import { newObjectId } from '../src/crypto/sealed-object.js';
import { silentLogger } from '../src/log.js';
import { createS3Client } from '../src/s3/s3-client.js';
import { readS3Credentials } from '../src/s3/s3-credentials.js';
import { openDatabase } from '../src/store/database.js';
import { stagedPath } from '../src/uplink/staging.js';
import { HttpReceiverStore } from '../src/uplink/http-receiver-store.js';
import { Outbox } from '../src/uplink/outbox.js';
import type { RemoteObjectStore } from '../src/uplink/remote-object-store.js';
import { S3ObjectStore } from '../src/uplink/s3-object-store.js';
import { Uploader, type UploadReport } from '../src/uplink/uploader.js';
import { allowAllGate } from '../test/harness/allow-all-gate.js';
import { freePort } from '../test/harness/mosquitto.js';
import { startSwift, SWIFT_ACCESS_KEY, SWIFT_SECRET_KEY } from '../test/harness/swift.js';
import { childProcesses, processSample } from './proc-stats.js';

/**
 * `npm run bench -- uplink`: MB/s and CPU per MB of uploading one age object (64 MiB by default) to the
 * local Swift (test/harness/swift.ts) and to the directory receiver, all from one staged file read as the
 * uploader reads it (a file stream, 64 KiB chunks). Variants, run interleaved round by round (in a fresh
 * random order every round) so that the machine's load falls on all alike:
 *  - `rawPutObject`, `rawUpload`: the raw client baseline, `@aws-sdk/client-s3` PutObject and
 *    `@aws-sdk/lib-storage` Upload with the part size and queue size the s3 transport uses (8 MiB, two
 *    parts at a time), client built by createS3Client as the hub builds it, nothing of camveil around it;
 *  - `rawUploadSdkDefaults`: Upload with the SDK's own defaults (5 MiB parts, four at once), for reference;
 *  - `s3Store`: camveil's s3 transport, S3ObjectStore.put;
 *  - `s3Uploader`: the same through the real Outbox and Uploader (enqueue to the `uploaded` outcome);
 *  - `http`: the http transport (HttpReceiverStore.put) to `camveil receiver` run as its own process.
 * Per trial: wall time, this process's CPU (process.cpuUsage) and the server side's CPU (the four Swift
 * processes, or the receiver's, from /proc). Each object is deleted after its trial (not timed).
 * CAMVEIL_BENCH_TRIALS rounds (default 7), CAMVEIL_BENCH_MIB object size (default 64),
 * CAMVEIL_BENCH_VARIANTS a comma-separated subset.
 */

const HUB = 'hub_aaaaaaaaaaaaaaaa';
const PREFIX = 'bench';
/**
 * The s3 transport's defaults for objects over its multipart threshold (src/uplink/s3-object-store.ts), given
 * to it and to the raw Upload alike, so that both always do the same.
 */
const PART_SIZE = 8 * 2 ** 20;
const QUEUE_SIZE = 2;

const VARIANTS = ['rawPutObject', 'rawUpload', 'rawUploadSdkDefaults', 's3Store', 's3Uploader', 'http'] as const;
type Variant = (typeof VARIANTS)[number];

interface Trial {
  ms: number;
  /** CPU seconds of this process (user + system). */
  cpuS: number;
  /** CPU seconds of the servers (Swift's four processes, or the receiver). */
  serverCpuS: number;
}

/** `camveil receiver --open` in its own process, so that its CPU is not this process's. */
async function startReceiverProcess(dir: string): Promise<{ url: string; child: ChildProcess; close(): Promise<void> }> {
  const port = await freePort();
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main, 'receiver', '--dir', dir, '--open', '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`receiver exited: ${stderr}`);
    try {
      const res = await fetch(`${url}/v1/objects/${HUB}`);
      await res.body?.cancel();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`receiver did not answer within 30 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const close = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  return { url, child, close };
}

function cpuOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (processSample(pid)?.cpuSeconds ?? 0), 0);
}

function summary(values: readonly number[], digits = 1): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 === 1 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const f = 10 ** digits;
  const r = (x: number) => Math.round(x * f) / f;
  return { median: r(median), min: r(sorted[0] ?? NaN), max: r(sorted.at(-1) ?? NaN) };
}

function assertUploaded(outcome: Awaited<ReturnType<RemoteObjectStore['put']>>, variant: Variant): void {
  if (outcome.kind !== 'uploaded') throw new Error(`${variant}: ${outcome.kind}: ${outcome.error.code} ${outcome.error.message}`);
}

export async function benchUplink(): Promise<object> {
  const rounds = Number(process.env.CAMVEIL_BENCH_TRIALS ?? 7);
  const mib = Number(process.env.CAMVEIL_BENCH_MIB ?? 64);
  const only = process.env.CAMVEIL_BENCH_VARIANTS?.split(',').map((v) => v.trim());
  const variants = VARIANTS.filter((v) => (only === undefined || only.includes(v)));
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-bench-uplink-'));
  const swift = await startSwift();
  const receiver = await startReceiverProcess(path.join(root, 'cloud'));
  // Swift's four servers are this process's Python children (tsx's esbuild service is another child).
  const swiftPids = childProcesses()
    .filter((p) => p.comm.startsWith('python'))
    .map((p) => p.pid);
  try {
    const bucket = await swift.createBucket('camveil-bench-uplink');
    const credentialsFile = path.join(root, 's3.yaml');
    writeFileSync(credentialsFile, `accessKeyId: ${SWIFT_ACCESS_KEY}\nsecretAccessKey: ${SWIFT_SECRET_KEY}\n`, { mode: 0o600 });
    const tokenFile = path.join(root, 'token');
    writeFileSync(tokenFile, 'bench-token\n', { mode: 0o600 });

    // One object, sealed once, staged as the outbox stages objects.
    const recipient = await identityToRecipient(await generateX25519Identity());
    const staging = path.join(root, 'staging');
    mkdirSync(staging, { recursive: true });
    const stagedId = newObjectId();
    const file = stagedPath(staging, stagedId);
    writeFileSync(file, await encryptToBuffer([recipient], randomBytes(mib * 2 ** 20)));
    const bytes = statSync(file).size;
    const read = () => createReadStream(file, { highWaterMark: 64 * 1024 });

    const client: S3Client = createS3Client({ endpoint: swift.endpoint, region: swift.region, forcePathStyle: true, credentials: readS3Credentials(credentialsFile) });
    const keyOf = (id: string) => `${PREFIX}/${HUB}/${id}.age`;
    const s3Options = { endpoint: swift.endpoint, region: swift.region, bucket, prefix: PREFIX, forcePathStyle: true, credentialsFile, hubPseudonym: HUB, partSizeBytes: PART_SIZE, queueSize: QUEUE_SIZE };
    const s3Store = new S3ObjectStore(s3Options);
    s3Store.open();
    const http = new HttpReceiverStore({ endpoint: new URL(receiver.url), hubPseudonym: HUB, tokenFile });
    http.open();

    // The real outbox and uploader in front of a second s3 store.
    const db = openDatabase(path.join(root, 'hub'));
    const outbox = new Outbox(db);
    const waiting = new Map<string, (report: UploadReport) => void>();
    const uploader = new Uploader({
      outbox,
      gate: allowAllGate,
      remote: new S3ObjectStore(s3Options),
      logger: silentLogger(),
      onOutcome: (report) => waiting.get(report.objectId)?.(report),
    });
    uploader.start();

    const run: Record<Variant, (id: string) => Promise<void>> = {
      rawPutObject: async (id) => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: keyOf(id), Body: read(), ContentLength: bytes, ContentType: 'application/octet-stream' }));
      },
      rawUpload: async (id) => {
        const upload = new Upload({
          client,
          params: { Bucket: bucket, Key: keyOf(id), Body: read(), ContentType: 'application/octet-stream' },
          partSize: PART_SIZE,
          queueSize: QUEUE_SIZE,
          leavePartsOnError: false,
        });
        await upload.done();
      },
      rawUploadSdkDefaults: async (id) => {
        const upload = new Upload({ client, params: { Bucket: bucket, Key: keyOf(id), Body: read(), ContentType: 'application/octet-stream' } });
        await upload.done();
      },
      s3Store: async (id) => assertUploaded(await s3Store.put({ objectId: id, bytes }, read(), new AbortController().signal), 's3Store'),
      s3Uploader: async (id) => {
        const report = await new Promise<UploadReport>((resolve) => {
          waiting.set(id, resolve);
          outbox.enqueue({ objectId: id, path: file, bytes, kind: 'clip' });
          uploader.kick();
        });
        waiting.delete(id);
        if (report.result !== 'uploaded') throw new Error(`s3Uploader: ${report.result}: ${report.code ?? ''} ${report.message ?? ''}`);
      },
      http: async (id) => assertUploaded(await http.put({ objectId: id, bytes }, read(), new AbortController().signal), 'http'),
    };
    const remove: Record<Variant, (id: string) => Promise<unknown>> = {
      rawPutObject: (id) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(id) })),
      rawUpload: (id) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(id) })),
      rawUploadSdkDefaults: (id) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(id) })),
      s3Store: (id) => s3Store.delete([id]),
      s3Uploader: (id) => s3Store.delete([id]),
      http: (id) => http.delete([id]),
    };
    const serverPids = (v: Variant) => (v === 'http' ? [receiver.child.pid!] : swiftPids);

    const trials = new Map<Variant, Trial[]>(variants.map((v) => [v, []]));
    // A warm-up of each (connections, JIT, Swift's first writes), not counted.
    for (const v of variants) {
      const id = newObjectId();
      await run[v](id);
      await remove[v](id);
    }
    for (let round = 0; round < rounds; round++) {
      // A fresh random order every round: no variant always follows the same one (Swift's work after the
      // one before, such as its fsyncs and deletions, would otherwise fall on the same variant each time).
      const order = [...variants];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const v of order) {
        const id = newObjectId();
        const pids = serverPids(v);
        const server0 = cpuOf(pids);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        await run[v](id);
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        const serverCpuS = cpuOf(pids) - server0;
        trials.get(v)!.push({ ms, cpuS: (cpu.user + cpu.system) / 1e6, serverCpuS });
        await remove[v](id);
      }
      process.stderr.write(`  uplink round ${round + 1}/${rounds}\n`);
    }
    await uploader.stop();
    db.close();
    client.destroy();

    const mb = bytes / 1e6;
    const results: Record<string, object> = {};
    const medianMBs = new Map<Variant, number>();
    for (const [v, list] of trials) {
      const mbs = summary(list.map((t) => mb / (t.ms / 1000)));
      medianMBs.set(v, mbs.median);
      results[v] = {
        MBs: mbs,
        cpuMsPerMB: summary(list.map((t) => (t.cpuS * 1000) / mb), 2),
        serverCpuMsPerMB: summary(list.map((t) => (t.serverCpuS * 1000) / mb), 2),
      };
    }
    /** Per round, variant `a`'s MB/s over `b`'s (same round, same load), then their median and spread. */
    const ratio = (a: Variant, b: Variant) => {
      const xs = trials.get(a);
      const ys = trials.get(b);
      if (xs === undefined || ys === undefined) return undefined;
      return summary(xs.map((x, i) => ys[i]!.ms / x.ms), 3);
    };
    return {
      objectBytes: bytes,
      rounds,
      swiftProcesses: swiftPids.length,
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      note: 'MB = 10^6 bytes; CPU in ms per MB; median/min/max over rounds; ratios per round (same load), then summarised',
      variants: results,
      s3StoreToRawUpload: ratio('s3Store', 'rawUpload'),
      s3StoreToRawPutObject: ratio('s3Store', 'rawPutObject'),
      s3StoreToRawUploadSdkDefaults: ratio('s3Store', 'rawUploadSdkDefaults'),
      s3UploaderToRawUpload: ratio('s3Uploader', 'rawUpload'),
      httpToRawUpload: ratio('http', 'rawUpload'),
    };
  } finally {
    await receiver.close();
    await swift.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
