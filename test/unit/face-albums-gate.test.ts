import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, describe, expect, it } from 'vitest';
import { openObjectToBuffer } from '../../src/crypto/sealed-object.js';
import { EventBus } from '../../src/events.js';
import { FaceAlbumRows } from '../../src/faces/face-album-rows.js';
import { FaceAlbums, type FaceAlbumContent } from '../../src/faces/face-albums.js';
import { silentLogger } from '../../src/log.js';
import { ConsentLedger, LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { PolicyGate } from '../../src/policy/gate.js';
import { SHIPPED_POLICY_VERSIONS } from '../../src/policy/policy-history.js';
import { SealedPublisher, type UploadItem } from '../../src/publishing/sealed-publisher.js';
import { openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { waitFor } from '../harness/wait.js';

/**
 * Face albums ask the gate, not the consent ledger: consent to face recognition alone does not let them
 * keep a sighting while the gate refuses face data for another reason (a policy not yet accepted, a region
 * that prohibits recognition). Real ledger, gate, store and age; no camera.
 */

const ACTOR = { actor: LOCAL_OPERATOR, requestDigest: 'a'.repeat(64) };
const inForce = SHIPPED_POLICY_VERSIONS.at(-1)!;
const PERSON = 'person_aaaaaaaaaaaaaaaa';
const dirs: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

async function hub() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-albums-gate-'));
  dirs.push(dataDir);
  const db = openDatabase(dataDir);
  cleanups.push(() => {
    if (db.open) db.close();
  });
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const ledger = new ConsentLedger(db);
  const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
  const staged: UploadItem[] = [];
  const bus = new EventBus();
  let sightings = 0;
  const albums = (region: string): FaceAlbums & { gate: PolicyGate } => {
    const gate = new PolicyGate({ ledger, region, policy: { inForce, history: SHIPPED_POLICY_VERSIONS }, forcedLocalOnly: false, cameras: () => new Map(), cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa' });
    const made = new FaceAlbums({
      db,
      bus,
      logger: silentLogger(),
      hub: { identity, recipient },
      publisher: new SealedPublisher({ recipients: () => [recipient], writer: store, uploads: { enqueue: (item) => void staged.push(item) } }),
      store,
      people: { ids: () => [PERSON], revision: () => 1, load: () => Promise.resolve([]) },
      gate,
      cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
      settings: { embeddings: false, maxSightings: 10, intervalMs: 50 },
      retentionDays: () => 30,
    });
    cleanups.push(() => made.stop());
    return Object.assign(made, { gate });
  };
  /** Reports a sighting on the bus and waits until the albums have dealt with it (their steps run in order). */
  const sighted = async (albums: FaceAlbums): Promise<string> => {
    sightings += 1;
    const sightingId = `sight_${String(sightings).padStart(16, 'a')}`;
    bus.emit('face.known', { cameraId: 'porch', personId: PERSON, at: Date.now(), distance: 0.4, sightingId });
    await albums.check();
    return sightingId;
  };
  const kept = async (): Promise<string[]> => {
    const { albums } = await new FaceAlbumRows(db, { identity, recipient }).loadAll();
    return albums.get(PERSON)?.sightings.map((s) => s.sightingId) ?? [];
  };
  const opened = async (item: UploadItem): Promise<FaceAlbumContent> =>
    JSON.parse((await openObjectToBuffer(identity, readFileSync(item.path))).body.toString('utf8')) as FaceAlbumContent;
  return { db, ledger, store, staged, albums, sighted, kept, opened };
}

describe('face albums ask the gate', () => {
  it('with the consent but the policy in force not accepted, a sighting is not kept; once it is accepted, the album holds only what came after', async () => {
    const h = await hub();
    for (const c of ['cloudUpload', 'faceRecognition'] as const) h.ledger.grant(c, { ...ACTOR, policyVersion: inForce.version });
    const albums = h.albums('DE');
    await albums.start();
    expect(albums.gate.faceData()).toEqual({ use: { allowed: false, reason: 'policy-not-accepted' }, fate: 'keep' });

    const before = await h.sighted(albums);
    expect(await h.kept()).toEqual([]);
    expect(h.staged).toEqual([]);

    h.ledger.acceptPolicy(inForce.version, ACTOR);
    expect(albums.gate.faceData().use).toEqual({ allowed: true, reason: 'ok' });
    const after = await h.sighted(albums);
    await waitFor('the album is published', () => h.staged.length === 1, 30_000);
    const content = await h.opened(h.staged[0]!);
    expect(content.sightings.map((s) => s.sightingId)).toEqual([after]);
    expect(content.sightings.map((s) => s.sightingId)).not.toContain(before);
  }, 60_000);

  it('in a region that prohibits face recognition, consent and an accepted policy do not make a sighting kept, and the albums already there are not deleted', async () => {
    const h = await hub();
    h.ledger.acceptPolicy(inForce.version, ACTOR);
    for (const c of ['cloudUpload', 'faceRecognition'] as const) h.ledger.grant(c, { ...ACTOR, policyVersion: inForce.version });
    const home = h.albums('DE');
    await home.start();
    const first = await h.sighted(home);
    await waitFor('the album is published', () => h.staged.length === 1, 30_000);
    await home.stop();

    // The same hub judged under the rules of a region the table does not know: recognition prohibited.
    const abroad = h.albums('ZZ');
    await abroad.start();
    expect(abroad.gate.faceData()).toEqual({ use: { allowed: false, reason: 'region-prohibits-face-recognition' }, fate: 'keep' });
    await h.sighted(abroad);
    await abroad.stop();
    expect(await h.kept()).toEqual([first]);
    expect(h.staged).toHaveLength(1);
    expect(h.store.get(h.staged[0]!.objectId)).toBeDefined();
  }, 60_000);
});
