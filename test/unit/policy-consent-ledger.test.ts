import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CamveilError } from '../../src/errors.js';
import { ConsentLedger, LOCAL_OPERATOR, foldConsent, requireGuardianAttestation } from '../../src/policy/consent-ledger.js';

const DIGEST = 'ab'.repeat(32);
const ctx = { actor: 'key_1', policyVersion: '2026-10', requestDigest: DIGEST };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof CamveilError ? e.code : `not a CamveilError: ${String(e)}`;
  }
  return undefined;
}

let dir: string;
let db: Database.Database;
let clock: number;
let ledger: ConsentLedger;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'camveil-ledger-'));
  db = new Database(join(dir, 'hub.db'));
  clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  ledger = new ConsentLedger(db, { now: () => new Date((clock += 1000)) });
});

afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Inserts a raw row, bypassing the CHECK constraints, as damage from outside would. */
function rawInsert(row: Record<string, unknown>): void {
  const full = {
    at: '2026-11-23T12:00:00.000Z',
    actor: 'key_1',
    kind: 'grant',
    consent: 'cloudUpload',
    policy_version: '2026-10',
    request_digest: DIGEST,
    subject: null,
    minor: null,
    guardian_key_id: null,
    guardian_statement: null,
    guardian_at: null,
    ...row,
  };
  db.pragma('ignore_check_constraints = ON');
  const cols = Object.keys(full);
  db.prepare(`INSERT INTO policy_consent_ledger (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`).run(full);
  db.pragma('ignore_check_constraints = OFF');
}

describe('consent ledger', () => {
  it('starts with every consent off and no policy accepted', () => {
    expect(ledger.currentConsent()).toEqual({ cloudUpload: false, faceRecognition: false, crossBorderTransfer: false, localRecording: false, seq: 0 });
  });

  it('folds grants, withdrawals and policy acceptance; the last record wins', () => {
    ledger.grant('cloudUpload', ctx);
    ledger.grant('faceRecognition', ctx);
    ledger.acceptPolicy('2026-10', { actor: LOCAL_OPERATOR, requestDigest: DIGEST });
    ledger.withdraw('faceRecognition', ctx);
    const last = ledger.grant('localRecording', ctx);
    expect(last).toMatchObject({ seq: 5, kind: 'grant', consent: 'localRecording', policyVersion: '2026-10', requestDigest: DIGEST, actor: 'key_1' });
    expect(ledger.currentConsent()).toEqual({
      cloudUpload: true,
      faceRecognition: false,
      crossBorderTransfer: false,
      localRecording: true,
      acceptedPolicyVersion: '2026-10',
      lastChangeAt: last.at,
      seq: 5,
    });
    expect(foldConsent(ledger.records())).toEqual(ledger.currentConsent());
  });

  it('survives a reopen of the same file (state is the records, nothing else)', () => {
    ledger.grant('crossBorderTransfer', ctx);
    ledger.acceptPolicy('v3', { actor: 'key_2', requestDigest: DIGEST });
    const before = ledger.currentConsent();
    db.close();
    db = new Database(join(dir, 'hub.db'));
    const again = new ConsentLedger(db);
    expect(again.currentConsent()).toEqual(before);
    expect(again.grant('cloudUpload', ctx).seq).toBe(3);
  });

  it('is append-only', () => {
    ledger.grant('cloudUpload', ctx);
    expect(() => db.prepare("UPDATE policy_consent_ledger SET kind = 'withdraw'").run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM policy_consent_ledger').run()).toThrow(/append-only/);
    expect(ledger.currentConsent().cloudUpload).toBe(true);
  });

  it('refuses malformed input with CAMVEIL_E_CONSENT_INVALID and writes nothing', () => {
    expect(codeOf(() => ledger.grant('cloudUpload', { ...ctx, requestDigest: 'XYZ' }))).toBe('CAMVEIL_E_CONSENT_INVALID');
    expect(codeOf(() => ledger.grant('cloudUpload', { ...ctx, actor: '' }))).toBe('CAMVEIL_E_CONSENT_INVALID');
    expect(codeOf(() => ledger.grant('camera' as 'cloudUpload', ctx))).toBe('CAMVEIL_E_CONSENT_INVALID');
    expect(codeOf(() => ledger.acceptPolicy('', { actor: 'k', requestDigest: DIGEST }))).toBe('CAMVEIL_E_CONSENT_INVALID');
    expect(ledger.records()).toEqual([]);
  });

  it.each([
    ['an unknown consent name', { seq: 1, consent: 'telemetry' }],
    ['an unknown kind', { seq: 1, kind: 'maybe' }],
    ['a bad time', { seq: 1, at: 'yesterday' }],
    ['a bad digest', { seq: 1, request_digest: 'nothex' }],
    ['a bad actor', { seq: 1, actor: '' }],
    ['a grant without consent name', { seq: 1, consent: null }],
    ['a seq that does not start at 1', { seq: 2 }],
    ['a minor without guardian', { seq: 1, kind: 'enrol', consent: null, subject: 'p_1', minor: 1 }],
  ])('throws CAMVEIL_E_CONSENT_UNREADABLE for %s', (_name, row) => {
    ledger.grant('cloudUpload', ctx);
    // Replace the good table's content with one bad row: recreate the table without the triggers.
    db.exec('DROP TRIGGER policy_consent_ledger_no_delete; DELETE FROM policy_consent_ledger;');
    rawInsert(row);
    expect(codeOf(() => ledger.currentConsent())).toBe('CAMVEIL_E_CONSENT_UNREADABLE');
  });

  it('throws CAMVEIL_E_CONSENT_UNREADABLE for a sequence gap', () => {
    ledger.grant('cloudUpload', ctx);
    rawInsert({ seq: 3, kind: 'withdraw' });
    expect(codeOf(() => ledger.currentConsent())).toBe('CAMVEIL_E_CONSENT_UNREADABLE');
    // A withdrawal can still be recorded; the ledger stays unreadable (fail closed) until repaired.
    expect(ledger.withdraw('cloudUpload', ctx).seq).toBe(4);
    expect(codeOf(() => ledger.records())).toBe('CAMVEIL_E_CONSENT_UNREADABLE');
  });

  it('throws CAMVEIL_E_CONSENT_UNREADABLE when the table is not what it should be', () => {
    db.exec('DROP TABLE policy_consent_ledger; CREATE TABLE policy_consent_ledger (seq INTEGER); INSERT INTO policy_consent_ledger VALUES (1)');
    expect(codeOf(() => ledger.currentConsent())).toBe('CAMVEIL_E_CONSENT_UNREADABLE');
  });

  it('records enrolment; a minor needs a guardian attestation', () => {
    const attestation = { guardianKeyId: 'key_parent', statement: 'I am the parent and consent.', at: '2026-11-23T11:00:00.000Z' };
    expect(codeOf(() => ledger.recordEnrolment({ subject: 'p_child', minor: true }, ctx))).toBe('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED');
    expect(ledger.records()).toEqual([]);
    ledger.recordEnrolment({ subject: 'p_adult', minor: false }, ctx);
    ledger.recordEnrolment({ subject: 'p_child', minor: true }, ctx, attestation);
    ledger.recordUnenrolment('p_adult', ctx);
    expect(ledger.currentEnrolments()).toEqual([{ subject: 'p_child', minor: true, seq: 2, guardianKeyId: 'key_parent' }]);
    expect(ledger.records()[1]?.guardian).toEqual(attestation);
    // Enrolment does not change consent.
    expect(ledger.currentConsent()).toMatchObject({ cloudUpload: false, faceRecognition: false, seq: 3 });
    expect(ledger.currentConsent().lastChangeAt).toBeUndefined();
  });
});

describe('requireGuardianAttestation', () => {
  const good = { guardianKeyId: 'key_parent', statement: 'consent', at: '2026-11-23T11:00:00.000Z' };
  it.each([
    ['adult, none', false, undefined, undefined],
    ['minor, complete', true, good, undefined],
    ['minor, none', true, undefined, 'CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED'],
    ['minor, blank statement', true, { ...good, statement: '  ' }, 'CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED'],
    ['minor, no key', true, { ...good, guardianKeyId: '' }, 'CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED'],
    ['minor, bad time', true, { ...good, at: 'now' }, 'CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED'],
  ] as const)('%s', (_name, minor, attestation, expected) => {
    expect(codeOf(() => requireGuardianAttestation({ minor }, attestation))).toBe(expected);
  });
});
