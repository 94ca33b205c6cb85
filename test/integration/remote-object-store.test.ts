import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, describe, expect, it } from 'vitest';
import { decryptToBuffer, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { CamveilError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { ConsentLedger, LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { PolicyGate } from '../../src/policy/gate.js';
import { SHIPPED_POLICY_VERSIONS } from '../../src/policy/policy-history.js';
import { openDatabase } from '../../src/store/database.js';
import { DeletionRequests } from '../../src/uplink/deletion-requests.js';
import { cutUploads } from '../../src/uplink/local-only.js';
import { Outbox, type OutboxEntry } from '../../src/uplink/outbox.js';
import type { DeleteResult, PutOutcome, RemoteListing, RemoteObject, RemoteObjectStore } from '../../src/uplink/remote-object-store.js';
import { Uploader } from '../../src/uplink/uploader.js';
import { waitFor } from '../harness/wait.js';

/**
 * The uploader is a scheduler over the RemoteObjectStore seam: here it drives a second store, written
 * in this test, that keeps objects in memory. Nothing of the HTTP receiver is involved, and everything the
 * uploader owns (queue order, the gate, retries, local-only) works the same.
 */

const AGE_MAGIC = 'age-encryption.org/v1\n';
const ACTOR = { actor: LOCAL_OPERATOR, requestDigest: 'a'.repeat(64) };
const inForce = SHIPPED_POLICY_VERSIONS.at(-1)!;

/** A remote store in memory: records what it was given, in order; `script` may answer instead of storing. */
class MemoryStore implements RemoteObjectStore {
  readonly description = { type: 'memory', origin: 'memory:' };
  readonly objects = new Map<string, Buffer>();
  readonly puts: string[] = [];
  opened = 0;
  /** Ids whose put waits, body half read, until its signal is aborted. */
  readonly hang = new Set<string>();
  readonly hanging = new Map<string, AbortSignal>();
  script: (objectId: string, attempt: number) => PutOutcome | undefined = () => undefined;

  open(): void {
    this.opened += 1;
  }

  async put(object: RemoteObject, body: Readable | Uint8Array, signal: AbortSignal): Promise<PutOutcome> {
    this.puts.push(object.objectId);
    const attempt = this.puts.filter((id) => id === object.objectId).length;
    const scripted = this.script(object.objectId, attempt);
    if (scripted !== undefined) return scripted;
    const chunks: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      if (this.hang.has(object.objectId)) {
        // One chunk taken, then nothing until the uploader aborts the signal it gave.
        this.hanging.set(object.objectId, signal);
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        const reason: unknown = signal.reason;
        return { kind: 'retry', error: reason instanceof CamveilError ? reason : new CamveilError('CAMVEIL_E_UPLOAD_ABORTED', 'aborted') };
      }
    }
    const bytes = Buffer.concat(chunks);
    if (bytes.length !== object.bytes) return { kind: 'reject', error: new CamveilError('CAMVEIL_E_UPLOAD_REJECTED', `size ${bytes.length} is not ${object.bytes}`) };
    this.objects.set(object.objectId, bytes);
    return { kind: 'uploaded' };
  }

  delete(objectIds: readonly string[]): Promise<DeleteResult> {
    for (const id of objectIds) this.objects.delete(id);
    return Promise.resolve({ deleted: [...objectIds], failed: [] });
  }

  list(): Promise<RemoteListing[]> {
    return Promise.resolve([...this.objects].map(([objectId, b]) => ({ objectId, bytes: b.length })));
  }
}

const dirs: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

async function setUp(store: MemoryStore) {
  const dir = mkdtempSync(join(tmpdir(), 'camveil-remote-'));
  dirs.push(dir);
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const db = openDatabase(join(dir, 'data'));
  cleanups.push(() => {
    if (db.open) db.close();
  });
  const ledger = new ConsentLedger(db);
  ledger.acceptPolicy(inForce.version, ACTOR);
  ledger.grant('cloudUpload', { ...ACTOR, policyVersion: inForce.version });
  const gate = new PolicyGate({ ledger, region: 'DE', policy: { inForce, history: SHIPPED_POLICY_VERSIONS }, forcedLocalOnly: false, cameras: () => new Map(), cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa' });
  const outbox = new Outbox(db);
  const uploader = new Uploader({ outbox, gate, remote: store, logger: silentLogger(), backoffBaseMs: 20, backoffCapMs: 50 });
  cleanups.push(() => uploader.stop());
  const plaintexts = new Map<string, Buffer>();
  const object = async (size: number): Promise<OutboxEntry> => {
    const objectId = newObjectId();
    const plaintext = randomBytes(size);
    const path = join(dir, `${objectId}.age`);
    const sealed = await encryptToBuffer([recipient], plaintext);
    writeFileSync(path, sealed);
    plaintexts.set(objectId, plaintext);
    return { objectId, path, bytes: sealed.length, kind: 'clip', cameraId: 'porch' };
  };
  return { db, ledger, outbox, uploader, identity, plaintexts, object };
}

describe('the uploader over a second RemoteObjectStore (in memory)', () => {
  it('sends the queue in order, as age ciphertext the household opens, retries what may pass and fails what is refused', async () => {
    const store = new MemoryStore();
    const hub = await setUp(store);
    const [a, b, c, d] = [await hub.object(50_000), await hub.object(300_000), await hub.object(10), await hub.object(2_000)];
    // b fails once in a way that may pass; d is refused for good.
    store.script = (id, attempt) => {
      if (id === b.objectId && attempt === 1) return { kind: 'retry', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', 'busy') };
      if (id === d.objectId) return { kind: 'reject', error: new CamveilError('CAMVEIL_E_UPLOAD_REJECTED', 'no room') };
      return undefined;
    };
    for (const o of [a, b, c, d]) hub.outbox.enqueue(o);
    hub.uploader.start();
    expect(store.opened).toBe(1);
    await waitFor('every object settled', () => [a, b, c].every((o) => hub.outbox.get(o.objectId)?.state === 'uploaded') && hub.outbox.get(d.objectId)?.state === 'failed', 60_000);

    // Queue order: the first attempts came in the order the objects were queued.
    expect(store.puts.filter((id, i) => store.puts.indexOf(id) === i)).toEqual([a.objectId, b.objectId, c.objectId, d.objectId]);
    expect(store.puts.filter((id) => id === b.objectId)).toHaveLength(2);
    expect(hub.outbox.get(d.objectId)).toMatchObject({ lastErrorCode: 'CAMVEIL_E_UPLOAD_REJECTED', lastError: 'no room' });
    // The store got age ciphertext, whole, which only the household's identity opens.
    for (const o of [a, b, c]) {
      const got = store.objects.get(o.objectId)!;
      expect(got.subarray(0, AGE_MAGIC.length).toString('latin1')).toBe(AGE_MAGIC);
      expect(got.length).toBe(o.bytes);
      expect((await decryptToBuffer([hub.identity], got)).equals(hub.plaintexts.get(o.objectId)!)).toBe(true);
    }
    expect(store.objects.has(d.objectId)).toBe(false);

    // Deletion requests go through the same seam.
    const deletions = new DeletionRequests(hub.db);
    deletions.add([a.objectId, c.objectId]);
    expect(await deletions.flush(store)).toEqual({ sent: 2, pending: 0 });
    expect((await store.list()).map((o) => o.objectId)).toEqual([b.objectId]);
  }, 120_000);

  it('local-only aborts the put in flight through its signal, and nothing more goes to the store', async () => {
    const store = new MemoryStore();
    const hub = await setUp(store);
    const [big, next] = [await hub.object(400_000), await hub.object(1_000)];
    store.hang.add(big.objectId);
    hub.outbox.enqueue(big);
    hub.outbox.enqueue(next);
    hub.uploader.start();
    await waitFor('the put is in flight', () => store.hanging.has(big.objectId), 60_000);
    const signal = store.hanging.get(big.objectId)!;
    expect(signal.aborted).toBe(false);

    // The household withdraws cloudUpload: the gate refuses from now on, and the uplink is cut.
    hub.ledger.withdraw('cloudUpload', { ...ACTOR, policyVersion: inForce.version });
    const destroyed = await cutUploads(hub.uploader, hub.outbox, 'local-only');

    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(CamveilError);
    expect((signal.reason as CamveilError).code).toBe('CAMVEIL_E_UPLOAD_ABORTED');
    expect(destroyed.sort()).toEqual([big.objectId, next.objectId].sort());
    expect(hub.uploader.uploading()).toEqual([]);
    expect(store.objects.size).toBe(0);
    // The scheduler keeps running; a new object is held by the gate and never reaches the store.
    const later = await hub.object(100);
    hub.outbox.enqueue(later);
    hub.uploader.kick();
    await waitFor('the gate held the new object', () => hub.outbox.get(later.objectId)?.lastErrorCode === 'gate', 60_000);
    expect(store.puts).toEqual([big.objectId]);
  }, 120_000);
});
