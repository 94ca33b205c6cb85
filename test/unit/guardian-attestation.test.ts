import { generateKeyPairSync, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  enrolmentSubject,
  GUARDIAN_FRESHNESS_MS,
  signGuardianAttestation,
  verifyGuardianAttestation,
  type SignedGuardianAttestation,
} from '../../src/control/guardian-attestation.js';
import { keyIdOf, KeyRegistry } from '../../src/control/key-registry.js';
import { CamveilError } from '../../src/errors.js';
import { openDatabase } from '../../src/store/database.js';

const HUB = 'guardian-hub';
const NOW = Date.parse('2026-12-04T12:00:00.000Z');
const SUBJECT = enrolmentSubject('Kid', ['cGhvdG8x']);

function appKey(): { privateKey: KeyObject; publicKey: string; keyId: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
  return { privateKey, publicKey: raw.toString('base64'), keyId: keyIdOf(raw) };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return error instanceof CamveilError ? error.code : `not a CamveilError: ${String(error)}`;
  }
  return 'no error';
}

/** The verifier against a real key registry on the hub's SQLite database. */
describe('guardian attestation', () => {
  let dir: string;
  let db: Database.Database;
  let registry: KeyRegistry;
  let guardian: ReturnType<typeof appKey>;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'camveil-guardian-'));
    db = openDatabase(dir);
    registry = new KeyRegistry(db);
    guardian = appKey();
    registry.add({ publicKey: guardian.publicKey, recipient: 'age1unused' }, NOW - 1000);
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const check = (a: SignedGuardianAttestation | undefined, over: Partial<{ hubId: string; subject: string; now: number }> = {}) =>
    verifyGuardianAttestation(a, { registry, hubId: HUB, subject: SUBJECT, now: NOW, ...over });

  it('accepts a fresh attestation signed by a paired key for this hub and this person', () => {
    const a = signGuardianAttestation(guardian, { hubId: HUB, subject: SUBJECT, at: new Date(NOW - 60_000) });
    expect(check(a)).toEqual({ guardianKeyId: guardian.keyId, statement: a.statement, at: new Date(NOW - 60_000).toISOString(), verifiedBy: 'paired-key' });
  });

  it.each<[string, () => SignedGuardianAttestation | undefined, Partial<{ hubId: string; subject: string; now: number }>?]>([
    ['none at all', () => undefined],
    ['a name as guardian key id (protocol v1: a string)', () => ({ guardianKeyId: 'nobody-at-all', statement: 'I consent', at: new Date(NOW).toISOString() })],
    ['nobody-at-all with a signature', () => ({ ...signGuardianAttestation(guardian, { hubId: HUB, subject: SUBJECT, at: new Date(NOW) }), guardianKeyId: 'nobody-at-all' })],
    ['a key that is not paired', () => signGuardianAttestation(appKey(), { hubId: HUB, subject: SUBJECT, at: new Date(NOW) })],
    [
      "another key's signature under the guardian's key id",
      () => ({ ...signGuardianAttestation(appKey(), { hubId: HUB, subject: SUBJECT, at: new Date(NOW) }), guardianKeyId: guardian.keyId }),
    ],
    ['an edited statement', () => ({ ...signGuardianAttestation(guardian, { hubId: HUB, subject: SUBJECT, at: new Date(NOW) }), statement: 'something else' })],
    ['a stale attestation', () => signGuardianAttestation(guardian, { hubId: HUB, subject: SUBJECT, at: new Date(NOW - GUARDIAN_FRESHNESS_MS - 1000) })],
    ['one from the future', () => signGuardianAttestation(guardian, { hubId: HUB, subject: SUBJECT, at: new Date(NOW + GUARDIAN_FRESHNESS_MS + 1000) })],
    ['an attestation for another hub', () => signGuardianAttestation(guardian, { hubId: 'other-hub', subject: SUBJECT, at: new Date(NOW) })],
    ['an attestation for another person', () => signGuardianAttestation(guardian, { hubId: HUB, subject: enrolmentSubject('Other kid', ['cGhvdG8x']), at: new Date(NOW) })],
    ['the same name with other photos', () => signGuardianAttestation(guardian, { hubId: HUB, subject: enrolmentSubject('Kid', ['cGhvdG8y']), at: new Date(NOW) })],
  ])('refuses %s', (_what, make, over) => {
    expect(codeOf(() => check(make(), over))).toBe('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED');
  });

  it('refuses a revoked guardian key', () => {
    const a = signGuardianAttestation(guardian, { hubId: HUB, subject: SUBJECT, at: new Date(NOW) });
    expect(check(a).verifiedBy).toBe('paired-key');
    registry.revoke(guardian.keyId, NOW);
    expect(codeOf(() => check(a))).toBe('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED');
  });
});
