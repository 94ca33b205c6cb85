import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../audit/canonical.js';
import { CamveilError } from '../errors.js';
import type { VerifiedGuardianAttestation } from '../policy/consent-ledger.js';
import { decodeBase64, ed25519KeyObject, rawEd25519, type KeyRegistry } from './key-registry.js';

/**
 * A guardian's consent to enrol a minor (Foscam Privacy Notice 2021, §6.1: written consent of a parent or
 * guardian) is a signature, not a string: the guardian is a paired app key, and signs with it
 *
 * ```
 * bytes = "camveil-guardian-v1\n" + canonicalJson({what: "enrol-minor", hub, subject, guardianKeyId, statement, at})
 * sig   = base64(Ed25519(guardian's key, bytes))
 * ```
 *
 * `hub` is the hub id (an attestation for one hub is refused by every other), `subject` the digest of whom it
 * is for (enrolmentSubject: the name and photos the app seals for the hub, so it cannot be moved to another
 * person), `at` ISO 8601 (accepted within GUARDIAN_FRESHNESS_MS of the hub clock, either way, so a captured
 * attestation is not good for ever). `canonicalJson` is audit/canonical.ts (keys sorted, no whitespace).
 * The app sends `{guardianKeyId, statement, at, sig}` inside the sealed `faces/enrol` payload.
 */
export const GUARDIAN_CONTEXT = 'camveil-guardian-v1';
export const GUARDIAN_FRESHNESS_MS = 10 * 60 * 1000;
/** What `camveil app faces enrol --minor` signs when no other statement is given. */
export const DEFAULT_GUARDIAN_STATEMENT = 'I am a parent or guardian of the person enrolled and consent to the enrolment of their face.';

/** The attestation as it travels (sealed to the hub inside the enrolment payload). */
export const signedGuardianAttestationSchema = z.strictObject({
  guardianKeyId: z.string().min(1).max(128),
  statement: z.string().min(1).max(2000),
  at: z.iso.datetime({ offset: true }),
  /** Absent in the attestations of protocol version 1, which are refused. */
  sig: z.string().min(1).max(256).optional(),
});
export type SignedGuardianAttestation = z.infer<typeof signedGuardianAttestationSchema>;

/**
 * The subject reference an attestation is bound to: SHA-256 hex of `canonicalJson({name, photos})` where
 * `photos` are the SHA-256 hex digests of the base64 photo texts, in order — exactly what the app seals.
 */
export function enrolmentSubject(name: string, photos: readonly string[]): string {
  const digests = photos.map((p) => createHash('sha256').update(p, 'utf8').digest('hex'));
  return createHash('sha256').update(canonicalJson({ name, photos: digests }), 'utf8').digest('hex');
}

/** The exact bytes a guardian signs. */
export function guardianAttestationBytes(fields: { hubId: string; subject: string; guardianKeyId: string; statement: string; at: string }): Buffer {
  const body = { what: 'enrol-minor', hub: fields.hubId, subject: fields.subject, guardianKeyId: fields.guardianKeyId, statement: fields.statement, at: fields.at };
  return Buffer.from(`${GUARDIAN_CONTEXT}\n${canonicalJson(body)}`, 'utf8');
}

/**
 * Signs an attestation with a paired app key (what `camveil app faces enrol --minor` does with the app's
 * own key). `at` defaults to now.
 */
export function signGuardianAttestation(
  key: { privateKey: KeyObject; keyId: string },
  fields: { hubId: string; subject: string; statement?: string; at?: Date },
): SignedGuardianAttestation {
  const statement = fields.statement ?? DEFAULT_GUARDIAN_STATEMENT;
  const at = (fields.at ?? new Date()).toISOString();
  const bytes = guardianAttestationBytes({ hubId: fields.hubId, subject: fields.subject, guardianKeyId: key.keyId, statement, at });
  return { guardianKeyId: key.keyId, statement, at, sig: sign(null, bytes, key.privateKey).toString('base64') };
}

function refused(why: string): CamveilError {
  return new CamveilError('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED', `enrolling a minor needs a guardian's signed attestation: ${why}`, { where: 'guardianAttestation' });
}

/**
 * Checks an attestation for this hub and this subject: signed by a paired, unrevoked key, over exactly the
 * bytes above, made within GUARDIAN_FRESHNESS_MS of `now`. Returns it as the ledger records it.
 *
 * @throws CamveilError `CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED` naming what is wrong (missing, unsigned, not a
 * paired key, stale, or a signature that does not verify for this hub and this person); nothing is enrolled.
 */
export function verifyGuardianAttestation(
  attestation: SignedGuardianAttestation | undefined,
  expected: { registry: Pick<KeyRegistry, 'get'>; hubId: string; subject: string; now: number },
): VerifiedGuardianAttestation {
  if (attestation === undefined) throw refused('none was given');
  if (attestation.sig === undefined) throw refused('it is not signed');
  if (attestation.statement.trim() === '') throw refused('the statement is blank');
  const key = expected.registry.get(attestation.guardianKeyId);
  if (key === undefined || key.revokedAt !== undefined) throw refused('the guardian is not a paired key of this hub');
  const at = Date.parse(attestation.at);
  if (Number.isNaN(at) || Math.abs(expected.now - at) > GUARDIAN_FRESHNESS_MS) throw refused('it is not fresh (made more than 10 minutes from the hub clock)');
  const signature = decodeBase64(attestation.sig);
  const publicKey = rawEd25519(key.publicKey);
  const bytes = guardianAttestationBytes({ hubId: expected.hubId, subject: expected.subject, guardianKeyId: attestation.guardianKeyId, statement: attestation.statement, at: attestation.at });
  if (signature?.length !== 64 || publicKey === undefined || !verify(null, bytes, ed25519KeyObject(publicKey), signature)) {
    throw refused('the signature does not verify for this hub and this person');
  }
  // The ledger keeps the canonical UTC form (its reader sorts times as strings).
  return { guardianKeyId: attestation.guardianKeyId, statement: attestation.statement, at: new Date(at).toISOString(), verifiedBy: 'paired-key' };
}
