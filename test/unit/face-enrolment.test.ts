import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrolmentStore } from '../../src/analysis/faces/enrolment.js';
import { purgeAfterWithdrawal } from '../../src/analysis/faces/withdrawal-purge.js';
import { FaceEngine, type Face } from '../../src/analysis/faces/face-engine.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import { runConsent } from '../../src/commands/consent.js';
import { runFacesDelete, runFacesEnrol, runFacesList, runFacesRename } from '../../src/commands/faces-enrol.js';
import type { CommandIO } from '../../src/commands/io.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { CamveilError } from '../../src/errors.js';
import { LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { UNSIGNED_ACTOR } from '../../src/policy/withdrawal.js';
import { cropOf, DEMO, testHub } from './face-fixtures.js';

const NAME = 'Zelda Quirinus-Testperson';
let engine: FaceEngine;
let dir: string;
let crop: string;
let blank: string;
let faces1: Face[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'camveil-enrol-'));
  engine = await FaceEngine.open();
  faces1 = await engine.detect(await readImageFile(join(DEMO, 'sample1.jpg')));
  crop = join(dir, 'person.jpg');
  await cropOf(faces1[0]!, crop);
  blank = join(dir, 'wall.png');
  await sharp({ create: { width: 400, height: 300, channels: 3, background: { r: 200, g: 180, b: 150 } } }).png().toFile(blank);
});

afterAll(async () => {
  engine.unload();
  await rm(dir, { recursive: true, force: true });
});

async function storeFor(hub: ReturnType<typeof testHub>) {
  const keys = await loadOrCreateHubKeys(hub.dataDir);
  return new EnrolmentStore({ db: hub.db, hub: keys, audit: hub.audit, policyVersion: hub.policyVersion, ledger: hub.ledger });
}

async function refusal(p: Promise<unknown>): Promise<CamveilError> {
  const e = await p.then(() => undefined, (error: unknown) => error);
  expect(e).toBeInstanceOf(CamveilError);
  return e as CamveilError;
}

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
}

describe('enrolment store', () => {
  it('enrols from a crop: listed by name (decrypted), the database never holds the name in clear, audit has the pseudonym only', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      const person = await store.enrol(engine, { name: NAME, photos: [crop], minor: false });
      expect(person.personId).toMatch(/^person_[a-z2-7]{16}$/);
      expect(await store.list()).toEqual([{ personId: person.personId, name: NAME, minor: false, templates: 1, negatives: 0, photosKept: 0, enrolledAt: person.enrolledAt }]);
      const loaded = await store.load();
      expect(loaded[0]!.templates[0]).toHaveLength(128);
      hub.db.pragma('wal_checkpoint(TRUNCATE)');
      for (const f of readdirSync(hub.dataDir).filter((n) => n.startsWith('camveil.db'))) {
        const bytes = readFileSync(join(hub.dataDir, f));
        expect(bytes.includes(Buffer.from('Zelda')), f).toBe(false);
        expect(bytes.includes(Buffer.from('Quirinus')), f).toBe(false);
      }
      const audit = hub.audit.entries().filter((e) => e.type === 'consent.changed');
      expect(audit).toHaveLength(1);
      expect(audit[0]!.details).toMatchObject({ state: 'enrolled', subject: person.personId, minor: false });
      expect(JSON.stringify(hub.audit.entries())).not.toContain('Zelda');
      expect(hub.ledger.records().at(-1)).toMatchObject({ kind: 'enrol', subject: person.personId, minor: false });

      await store.rename(person.personId, 'Zelda Q.');
      expect((await store.list())[0]!.name).toBe('Zelda Q.');
      const before = store.revision();
      store.delete(person.personId);
      expect(store.revision()).toBeGreaterThan(before);
      expect(await store.list()).toEqual([]);
      expect(await store.load()).toEqual([]);
      expect(hub.audit.entries().filter((e) => e.type === 'consent.changed').at(-1)!.details).toMatchObject({ state: 'unenrolled', subject: person.personId });
      expect((await refusal(Promise.resolve().then(() => store.delete(person.personId)))).code).toBe('CAMVEIL_E_PERSON_NOT_FOUND');
    } finally {
      hub.close();
    }
  });

  it('refuses a photo with several faces, one with none, and says which photo', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      const several = await refusal(store.enrol(engine, { name: NAME, photos: [crop, join(DEMO, 'sample1.jpg')], minor: false }));
      expect(several.code).toBe('CAMVEIL_E_SEVERAL_FACES');
      expect(several.message).toMatch(/^photo 2 \(.*sample1\.jpg\): 3 usable faces/);
      const none = await refusal(store.enrol(engine, { name: NAME, photos: [blank], minor: false }));
      expect(none.code).toBe('CAMVEIL_E_NO_FACE');
      expect(none.message).toMatch(/^photo 1 \(.*wall\.png\): no face found/);
      const tiny = join(dir, 'tiny.jpg');
      await sharp(crop).resize(40).jpeg().toFile(tiny);
      const small = await refusal(store.enrol(engine, { name: NAME, photos: [tiny], minor: false }));
      expect(small.code).toBe('CAMVEIL_E_NO_FACE');
      expect(small.message).toMatch(/photo 1 .*(too small|no face found)/);
      expect(store.count()).toBe(0);
      expect(hub.audit.entries().filter((e) => e.type === 'consent.changed')).toHaveLength(0);
    } finally {
      hub.close();
    }
  });

  it('a minor needs a guardian attestation; with one, the ledger keeps it and the audit marks minor', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      const e = await refusal(store.enrol(engine, { name: 'Kid', photos: [crop], minor: true }));
      expect(e.code).toBe('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED');
      expect(store.count()).toBe(0);
      // An attestation nobody verified (a string, as protocol v1 took it) is refused too.
      const unverified = { guardianKeyId: 'nobody-at-all', statement: 'trust me', at: new Date().toISOString() };
      const e2 = await refusal(store.enrol(engine, { name: 'Kid', photos: [crop], minor: true, guardianAttestation: unverified as never }));
      expect(e2.code).toBe('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED');
      expect(store.count()).toBe(0);
      const kid = await store.enrol(engine, {
        name: 'Kid',
        photos: [crop],
        minor: true,
        guardianAttestation: { guardianKeyId: 'key-guardian-1', statement: 'I am her parent and consent.', at: new Date().toISOString(), verifiedBy: 'console' },
      });
      expect(hub.audit.entries().at(-1)!.details).toMatchObject({ state: 'enrolled', subject: kid.personId, minor: true });
      expect(store.deleteAll()).toBe(1);
      expect(store.count()).toBe(0);
    } finally {
      hub.close();
    }
  });
});

describe('faceRecognition withdrawal', () => {
  it('deletes everyone enrolled before the withdrawal, and only then; re-running is a no-op', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      hub.acceptAndGrant();
      const a = await store.enrol(engine, { name: 'A', photos: [crop], minor: false });
      const b = await store.enrol(engine, { name: 'B', photos: [crop], minor: false });
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(0); // consent granted: nothing to do
      hub.withdraw();
      const later = await store.enrol(engine, { name: 'C', photos: [crop], minor: false });
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(2);
      expect(store.ids()).toEqual([later.personId]);
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(0);
      const unenrolled = hub.audit.entries().filter((e) => e.type === 'consent.changed' && (e.details as { state: string }).state === 'unenrolled');
      expect(unenrolled.map((e) => (e.details as { subject: string }).subject).sort()).toEqual([a.personId, b.personId].sort());
      expect(hub.ledger.records().filter((r) => r.kind === 'unenrol')).toHaveLength(2);
    } finally {
      hub.close();
    }
  });

  it('each unenrolment names the withdrawal that deleted it: the signing key, the console, or an unsigned stop held past its retention', async () => {
    const hub = testHub();
    try {
      const store = await storeFor(hub);
      hub.acceptAndGrant();
      const unenrolment = (personId: string) => hub.ledger.records().find((r) => r.kind === 'unenrol' && r.subject === personId);
      const audited = (personId: string) =>
        hub.audit.entries().find((e) => e.type === 'consent.changed' && (e.details as { state: string; subject?: string }).state === 'unenrolled' && (e.details as { subject?: string }).subject === personId)?.details;
      const withdraw = (actor: string, requestDigest: string) => hub.ledger.withdraw('faceRecognition', { actor, requestDigest, policyVersion: hub.policyVersion });
      const grant = () => hub.ledger.grant('faceRecognition', { actor: LOCAL_OPERATOR, requestDigest: 'a'.repeat(64), policyVersion: hub.policyVersion });

      // Signed by a paired key (the shape of a key id: 16 base32 characters).
      const signedKey = 'abcdefghijklmnop';
      const a = await store.enrol(engine, { name: 'A', photos: [crop], minor: false });
      withdraw(signedKey, 'b'.repeat(64));
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(1);
      expect(unenrolment(a.personId)).toMatchObject({ actor: signedKey, requestDigest: 'b'.repeat(64) });
      expect(audited(a.personId)).toMatchObject({ keyId: signedKey, requestDigest: 'b'.repeat(64) });
      expect(audited(a.personId)).not.toHaveProperty('reason');

      // At the console.
      grant();
      const b = await store.enrol(engine, { name: 'B', photos: [crop], minor: false });
      withdraw(LOCAL_OPERATOR, 'c'.repeat(64));
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(1);
      expect(unenrolment(b.personId)).toMatchObject({ actor: LOCAL_OPERATOR, requestDigest: 'c'.repeat(64) });
      expect(audited(b.personId)).not.toHaveProperty('keyId');

      // Unsigned: held, then deleted by the retention, never in the name of a key or the console.
      grant();
      const c = await store.enrol(engine, { name: 'C', photos: [crop], minor: false });
      withdraw(UNSIGNED_ACTOR, 'd'.repeat(64));
      expect(purgeAfterWithdrawal(store, hub.ledger)).toBe(0);
      expect(purgeAfterWithdrawal(store, hub.ledger, { heldMaxDays: 0 })).toBe(1);
      expect(unenrolment(c.personId)).toMatchObject({ actor: UNSIGNED_ACTOR, requestDigest: 'd'.repeat(64) });
      expect(audited(c.personId)).toMatchObject({ reason: 'held-retention', requestDigest: 'd'.repeat(64) });
      expect(audited(c.personId)).not.toHaveProperty('keyId');
    } finally {
      hub.close();
    }
  });
});

describe('faces enrol / list / delete commands', () => {
  it('enrol, list and delete through the hub database named by a config file', async () => {
    const hub = testHub();
    hub.db.close();
    const config = join(dir, 'camveil.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(config, `hub:\n  id: test-hub\n  region: DE\ndataDir: ${hub.dataDir}\ncameras: []\n`);
    // Without the household's faceRecognition consent (and an accepted policy) nobody can be enrolled.
    const early = capture();
    expect(await runFacesEnrol({ config, name: NAME, photos: [crop], engine }, early)).toBe(1);
    expect(early.err.join('')).toMatch(/CAMVEIL_E_CONSENT_REQUIRED.*(policy-not-accepted|face-consent-missing)/);
    await runConsent({ kind: 'accept-policy', version: '2021-10-31' }, { config }, capture());
    await runConsent({ kind: 'grant', consent: 'faceRecognition' }, { config }, capture());
    const io = capture();
    expect(await runFacesEnrol({ config, name: NAME, photos: [crop], engine }, io), io.err.join('\n')).toBe(0);
    const id = /person_[a-z2-7]{16}/.exec(io.out.join('\n'))?.[0];
    expect(id).toBeDefined();
    const listed = capture();
    expect(await runFacesList({ config, json: true }, listed)).toBe(0);
    expect(JSON.parse(listed.out.join(''))).toMatchObject({ people: [{ personId: id, name: NAME, minor: false, templates: 1 }] });
    const renamed = capture();
    expect(await runFacesRename({ config, personId: id!, name: 'Corrected Name' }, renamed)).toBe(0);
    const relisted = capture();
    await runFacesList({ config, json: true }, relisted);
    expect(JSON.parse(relisted.out.join(''))).toMatchObject({ people: [{ personId: id, name: 'Corrected Name' }] });
    expect(await runFacesRename({ config, personId: 'person_aaaaaaaaaaaaaaaa', name: 'x' }, capture())).toBe(1);
    const refused = capture();
    expect(await runFacesEnrol({ config, name: 'Kid', photos: [crop], minor: true, engine }, refused)).toBe(1);
    expect(refused.err.join('')).toContain('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED');
    const several = capture();
    expect(await runFacesEnrol({ config, name: NAME, photos: [join(DEMO, 'sample1.jpg')], engine }, several)).toBe(2);
    expect(several.err.join('')).toContain('CAMVEIL_E_SEVERAL_FACES');
    const del = capture();
    expect(await runFacesDelete({ config, personId: id! }, del)).toBe(0);
    const after = capture();
    await runFacesList({ config, json: true }, after);
    expect(JSON.parse(after.out.join(''))).toEqual({ people: [] });
    hub.close();
  });
});
