import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
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
import { Uploader } from '../src/uplink/uploader.js';

/**
 * `npm run bench -- withdrawal`: how fast withdrawing cloudUpload stops the bytes. Each trial queues a
 * 4 MiB age object, lets its upload run (capped at 2 MiB/s, so it is mid-flight), withdraws cloudUpload
 * through the same ConsentService and enforcement (`cutUploads`) the gateway uses, and watches the bytes
 * a TCP relay in front of the receiver forwards. Reported: time from the withdrawal call to the last
 * byte the receiver sees (p50, p99, max), and bytes the receiver saw after the withdrawal call returned;
 * the relay runs in its own process and stamps each chunk with the machine's clock as it reads it
 * (goal: p99 < 100 ms, zero bytes after). CAMVEIL_BENCH_TRIALS sets the number of trials (default 100).
 */

interface Relay {
  port: number;
  /** Absolute time (ms, sub-ms resolution) and size of every chunk forwarded to the receiver. */
  chunks: Array<{ t: number; n: number }>;
  close(): void;
}

/** Starts bench/tcp-relay.ts in its own process in front of the receiver. */
function startRelay(targetPort: number): Promise<Relay> {
  const child = fork(fileURLToPath(new URL('./tcp-relay.ts', import.meta.url)), [String(targetPort)], { execArgv: ['--import', 'tsx'] });
  const chunks: Relay['chunks'] = [];
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (m: { port?: number; t?: number; n?: number }) => {
      if (m.port !== undefined) resolve({ port: m.port, chunks, close: () => child.disconnect() });
      else if (m.t !== undefined && m.n !== undefined) chunks.push({ t: m.t, n: m.n });
    });
  });
}

const now = () => performance.timeOrigin + performance.now();

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export async function benchWithdrawal(): Promise<object> {
  const trials = Number(process.env.CAMVEIL_BENCH_TRIALS ?? 100);
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-withdrawal-'));
  const receiver = await startReceiver({ dir: path.join(root, 'cloud'), token: 'bench-token' });
  const relay = await startRelay(receiver.port);
  const tokenFile = path.join(root, 'token');
  writeFileSync(tokenFile, 'bench-token\n', { mode: 0o600 });
  const recipient = await identityToRecipient(await generateX25519Identity());
  const payload = await encryptToBuffer([recipient], randomBytes(4 * 2 ** 20));

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
  const uploader = new Uploader({
    outbox,
    gate,
    remote: new HttpReceiverStore({ endpoint: new URL(`http://127.0.0.1:${relay.port}`), hubPseudonym: 'hub_aaaaaaaaaaaaaaaa', tokenFile, bandwidthBytesPerSecond: 2 * 2 ** 20 }),
    logger: silentLogger(),
  });
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
  const callMs: number[] = [];
  let bytesAfterReturn = 0;
  let trialsWithBytesAfter = 0;
  for (let i = 0; i < trials; i++) {
    await consent.grant('cloudUpload', localRequest(`bench: grant ${i}`));
    const id = newObjectId();
    const file = path.join(root, `${id}.age`);
    writeFileSync(file, payload);
    relay.chunks.length = 0;
    outbox.enqueue({ objectId: id, path: file, bytes: payload.length, kind: 'clip' });
    uploader.kick();
    // Mid-flight: at least 256 KiB through, at a random point of the first half of the upload.
    const threshold = 256 * 1024 + Math.random() * payload.length * 0.4;
    while (relay.chunks.reduce((s, c) => s + c.n, 0) < threshold) await new Promise((r) => setTimeout(r, 5));
    const t0 = now();
    await consent.withdraw('cloudUpload', localRequest(`bench: withdraw ${i}`));
    const returned = now();
    callMs.push(returned - t0);
    // Anything still on its way arrives within this.
    await new Promise((r) => setTimeout(r, 150));
    const last = relay.chunks.at(-1)?.t ?? t0;
    toLastByte.push(Math.max(0, last - t0));
    const after = relay.chunks.filter((c) => c.t > returned).reduce((s, c) => s + c.n, 0);
    bytesAfterReturn += after;
    if (after > 0) trialsWithBytesAfter += 1;
  }
  consent.stop();
  await uploader.stop();
  relay.close();
  await receiver.close();
  const stats = outbox.stats();
  db.close();
  rmSync(root, { recursive: true, force: true });
  const sorted = [...toLastByte].sort((a, b) => a - b);
  const calls = [...callMs].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    trials,
    objectBytes: payload.length,
    uploadCapBytesPerSecond: 2 * 2 ** 20,
    msFromWithdrawalToLastByte: { p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)), max: r(sorted.at(-1) ?? NaN) },
    msWithdrawalCall: { p50: r(percentile(calls, 50)), p99: r(percentile(calls, 99)) },
    bytesReceivedAfterWithdrawalReturned: bytesAfterReturn,
    trialsWithBytesAfterReturn: trialsWithBytesAfter,
    uploadsCompleted: receiver.received().length,
    outboxAfter: stats,
  };
}
