import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import { Readable } from 'node:stream';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { manifestProblems } from '../../src/crypto/manifest.js';
import { pseudonym } from '../../src/crypto/pseudonym.js';
import { newObjectId, sealObject } from '../../src/crypto/sealed-object.js';
import { silentLogger } from '../../src/log.js';
import { ConsentLedger, LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { PolicyGate } from '../../src/policy/gate.js';
import { SHIPPED_POLICY_VERSIONS } from '../../src/policy/policy-history.js';
import { startReceiver } from '../../src/receiver/server.js';
import { migrate, openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { STORE_MODULE, STORE_SCHEMA } from '../../src/store/schema.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { HttpReceiverStore } from '../../src/uplink/http-receiver-store.js';
import { Uploader } from '../../src/uplink/uploader.js';
import { waitFor } from '../harness/wait.js';

const ACTOR = { actor: LOCAL_OPERATOR, requestDigest: 'a'.repeat(64) };
const inForce = SHIPPED_POLICY_VERSIONS.at(-1)!;
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'camveil-album-kind-'));
  dirs.push(d);
  return d;
}

function gateIn(dataDir: string, region: string, consents: Array<'cloudUpload' | 'faceRecognition'>) {
  const db = openDatabase(dataDir);
  const ledger = new ConsentLedger(db);
  const audit = new AuditLog(db);
  ledger.acceptPolicy(inForce.version, ACTOR);
  for (const c of consents) ledger.grant(c, { ...ACTOR, policyVersion: inForce.version });
  const gate = new PolicyGate({
    ledger,
    region,
    policy: { inForce, history: SHIPPED_POLICY_VERSIONS },
    forcedLocalOnly: false,
    cameras: () => new Map(),
    audit,
    cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
  });
  return { db, gate, audit };
}

describe("the 'face-album' object kind", () => {
  it('manifests: a face album names no camera; clips, snapshots and events still must', () => {
    const base = { version: 1, objectId: newObjectId(), startedAt: new Date().toISOString(), contentType: 'application/json' };
    expect(manifestProblems({ ...base, kind: 'face-album' })).toEqual([]);
    expect(manifestProblems({ ...base, kind: 'event' })).toEqual(['cameraPseudonym: required for a event']);
    expect(manifestProblems({ ...base, kind: 'clip', cameraPseudonym: 'cam_aaaaaaaaaaaaaaaa' })).toEqual([]);
    expect(manifestProblems({ ...base, kind: 'face-albums' })).not.toEqual([]);
  });

  it('the store migration rebuilds store_objects: old rows kept, face-album accepted, unknown kinds still refused', async () => {
    const dataDir = tmp();
    const db = openDatabase(dataDir);
    // A database as the previous release left it: step 1 only, with a clip in it.
    migrate(db, STORE_MODULE, STORE_SCHEMA.slice(0, 1));
    const clipId = newObjectId();
    db.prepare('INSERT INTO store_objects (object_id, kind, camera_id, event_id, captured_at, stored_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)').run(clipId, 'clip', 'porch', 'ev1', 1000, 1001, 42);
    expect(() => db.prepare("INSERT INTO store_objects (object_id, kind, captured_at, stored_at, bytes) VALUES (?, 'face-album', 1, 1, 1)").run(newObjectId())).toThrow(/CHECK/);
    const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
    // recover() drops rows whose file is missing, so look at the row through SQL before it runs again.
    expect(db.prepare('SELECT version FROM schema_versions WHERE module = ?').get(STORE_MODULE)).toEqual({ version: 2 });
    const indexes = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'store_objects' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
    expect(indexes).toEqual(['store_objects_age', 'store_objects_camera', 'store_objects_event']);
    const recipient = await identityToRecipient(await generateX25519Identity());
    const albumId = newObjectId();
    const body = sealObject([recipient], { version: 1, objectId: albumId, kind: 'face-album', startedAt: new Date().toISOString(), contentType: 'application/json' }, Buffer.from('{}'));
    const stored = await store.put({ objectId: albumId, kind: 'face-album', capturedAt: Date.now(), body });
    expect(store.list({ kind: 'face-album' }).map((o) => o.objectId)).toEqual([albumId]);
    expect(stored.cameraId).toBeUndefined();
    expect(() => db.prepare("INSERT INTO store_objects (object_id, kind, captured_at, stored_at, bytes) VALUES (?, 'album', 1, 1, 1)").run(newObjectId())).toThrow(/CHECK/);
    db.close();
  });

  it("the uploader's gate treats a face album as face data: held without faceRecognition consent or where the region forbids faces, even with cloudUpload", async () => {
    const dataDir = tmp();
    const { db, gate, audit } = gateIn(dataDir, 'DE', ['cloudUpload']);
    expect(gate.mayUpload({ objectId: newObjectId(), kind: 'face-album' })).toEqual({ allowed: false, reason: 'face-consent-missing' });
    const strict = gateIn(tmp(), 'ZZ', ['cloudUpload', 'faceRecognition']);
    expect(strict.gate.mayUpload({ objectId: newObjectId(), kind: 'face-album' })).toEqual({ allowed: false, reason: 'region-prohibits-face-recognition' });
    expect(strict.gate.mayUpload({ objectId: newObjectId(), kind: 'clip' }).allowed).toBe(true);
    strict.db.close();

    // End to end: a real outbox, uploader and receiver; the clip goes, the album stays queued with the gate's reason.
    const receiver = await startReceiver({ dir: join(dataDir, 'cloud'), token: 'tok' });
    const tokenFile = join(dataDir, 'token');
    writeFileSync(tokenFile, 'tok\n', { mode: 0o600 });
    const outbox = new Outbox(db);
    const recipient = await identityToRecipient(await generateX25519Identity());
    const entry = async (kind: string) => {
      const objectId = newObjectId();
      const file = join(dataDir, `${objectId}.age`);
      const chunks: Buffer[] = [];
      for await (const c of sealObject([recipient], { version: 1, objectId, kind: kind as 'clip', cameraPseudonym: 'cam_aaaaaaaaaaaaaaaa', startedAt: new Date().toISOString(), contentType: 'application/json' }, Readable.from([randomBytes(64)])) as AsyncIterable<Buffer>) chunks.push(c);
      writeFileSync(file, Buffer.concat(chunks));
      return { objectId, path: file, bytes: Buffer.concat(chunks).length, kind };
    };
    const album = await entry('face-album');
    const clip = await entry('clip');
    outbox.enqueue(album);
    outbox.enqueue(clip);
    const uploader = new Uploader({ outbox, gate, remote: new HttpReceiverStore({ endpoint: validateEndpoint(receiver.url), hubPseudonym: pseudonym(randomBytes(32), 'hub', 'h'), tokenFile }), logger: silentLogger() });
    try {
      uploader.start();
      await waitFor('the clip upload', () => outbox.get(clip.objectId)?.state === 'uploaded', 10_000);
      expect(outbox.get(album.objectId)).toMatchObject({ state: 'queued', lastErrorCode: 'gate', lastError: 'gate: face-consent-missing' });
      expect(receiver.received().map((r) => r.objectId)).toEqual([clip.objectId]);
      expect(audit.entries({ limit: 100 }).filter((e) => e.type === 'upload.denied').map((e) => e.details)).toContainEqual(expect.objectContaining({ objectId: album.objectId, kind: 'face-album', reason: 'face-consent-missing' }));
    } finally {
      await uploader.stop();
      await receiver.close();
      db.close();
    }
  });
});
