import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { startReceiver, type Receiver } from '../../src/receiver/server.js';
import { runCamveil, startHub } from '../harness/hub-process.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const TRIALS = Number(process.env.CAMVEIL_FAULT_TRIALS ?? 20);
const SEED = 20261204;
const TOKEN = 'kill-nine-upload-token-0123456789';

/** A small seeded generator (mulberry32): the same kill moments on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rows<T>(dataDir: string, sql: string): T[] {
  const db = new Database(path.join(dataDir, 'camveil.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/**
 * `kill -9` of the hub (`camveil run`, its own process) at seeded random moments while a camera records and
 * uploads, then one last run until the queue has drained. Whatever was committed must end up in the cloud
 * exactly once (a repeated PUT of the same id is the protocol's idempotent retry), nothing half-written is
 * trusted, no plaintext is left on disk, and the audit chain verifies.
 */
describeWithPeers(['ffmpeg'], `fault: kill -9 of the hub at ${TRIALS} seeded random moments`, () => {
  let root: string;
  let dataDir: string;
  let config: string;
  let identity: string;
  let receiver: Receiver;
  const kills: number[] = [];

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-kill9-'));
    dataDir = path.join(root, 'hub');
    identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    receiver = await startReceiver({ dir: path.join(root, 'cloud'), token: TOKEN });
    const tokenFile = path.join(root, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    // Motion for 2 s of every 6 (the file loops): a clip, a snapshot and an event record every 6 s.
    const video = motionVideo({ seconds: 6, motionAt: 1, motionUntil: 3, width: 640, height: 360 });
    config = path.join(root, 'camveil.yaml');
    writeFileSync(
      config,
      [
        'hub: { id: kill-hub, region: DE }',
        `dataDir: ${dataDir}`,
        'cameras:',
        `  - { id: door, source: "file:${video}", analysis: { fps: 4, width: 320, height: 180 } }`,
        `household: { recipients: ["${recipient}"] }`,
        'recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 }',
        `uplink: { enabled: true, endpoints: { eu: "${receiver.url}" }, tokenFile: "${tokenFile}", timeoutSeconds: 30 }`,
        '',
      ].join('\n'),
    );
    for (const args of [['accept-policy', '2021-10-31'], ['grant', 'localRecording'], ['grant', 'cloudUpload']]) {
      const r = await runCamveil(['consent', ...args, '--config', config]);
      expect(r.code, r.out).toBe(0);
    }
  }, 120_000);

  afterAll(async () => {
    await receiver?.close();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('after every kill and a last run, each committed object is in the cloud once, whole, and nothing is lost or left in clear', async () => {
    const random = seeded(SEED);
    for (let trial = 0; trial < TRIALS; trial++) {
      const hub = await startHub(config);
      // Anywhere from just after start to past the end of a clip (one every 6 s).
      const after = Math.round(200 + random() * 7_800);
      kills.push(after);
      await new Promise((r) => setTimeout(r, after));
      hub.child.kill('SIGKILL');
      await hub.exited;
    }
    // The last run: until every stored object has been uploaded.
    const hub = await startHub(config);
    const stored = () => rows<{ object_id: string; kind: string }>(dataDir, 'SELECT object_id, kind FROM store_objects');
    const pending = () => rows<{ n: number }>(dataDir, "SELECT count(*) AS n FROM uplink_outbox WHERE state IN ('queued', 'uploading')")[0]!.n;
    // At least one more event, so the last run also commits and uploads while it drains the backlog.
    const before = stored().length;
    await waitFor('a new object and an empty queue', () => stored().length > before && pending() === 0, 120_000);
    const drained = new Set(stored().map((o) => o.object_id));
    expect(await hub.stop()).toBe(0);

    const objects = stored();
    const outbox = rows<{ object_id: string; state: string }>(dataDir, 'SELECT object_id, state FROM uplink_outbox');
    const inCloud = new Map<string, number>();
    for (const r of receiver.received()) inCloud.set(r.objectId, (inCloud.get(r.objectId) ?? 0) + 1);
    const cloudFiles = filesUnder(path.join(root, 'cloud')).filter((f) => f.endsWith('.age'));

    // Every object committed by the time the queue had drained reached the cloud; those the orderly stop
    // sealed afterwards (the open clip, its snapshot and record) wait in the queue for the next run.
    expect(drained.size).toBeGreaterThan(0);
    expect(objects.filter((o) => drained.has(o.object_id) && !inCloud.has(o.object_id)).map((o) => o.object_id)).toEqual([]);
    const late = new Set(objects.filter((o) => !drained.has(o.object_id)).map((o) => o.object_id));
    expect(outbox.filter((o) => o.state !== 'uploaded' && !(late.has(o.object_id) && o.state === 'queued'))).toEqual([]);
    expect([...late].filter((id) => !outbox.some((o) => o.object_id === id))).toEqual([]);
    // Stored once in the cloud: one file per id, whatever retries the kills caused.
    expect(cloudFiles.length).toBe(new Set(cloudFiles.map((f) => path.basename(f))).size);
    // Nothing half-written is trusted: every object the hub holds, and every one the cloud holds, decrypts.
    const objectFiles = filesUnder(path.join(dataDir)).filter((f) => f.endsWith('.age'));
    for (const file of [...objectFiles, ...cloudFiles]) {
      const plain = await decryptToBuffer(identity, readFileSync(file));
      expect(plain.length).toBeGreaterThan(0);
    }
    // No plaintext media on disk: no MP4 or JPEG magic anywhere under the data directory.
    for (const file of filesUnder(dataDir)) {
      if (statSync(file).size < 12) continue;
      const head = readFileSync(file).subarray(0, 12);
      expect({ file, mp4: head.subarray(4, 8).toString('latin1') === 'ftyp', jpeg: head[0] === 0xff && head[1] === 0xd8 }).toEqual({ file, mp4: false, jpeg: false });
    }
    // The audit chain survived every kill.
    const verify = await runCamveil(['audit', 'verify', '--data-dir', dataDir]);
    expect(verify.code, verify.out).toBe(0);
    console.info(JSON.stringify({ trials: TRIALS, killedAfterMs: kills, objects: objects.length, uploads: receiver.received().length, distinctInCloud: inCloud.size }));
  }, 600_000);
});
