import { z } from 'zod';
import { OBJECT_ID_PATTERN } from '../crypto/manifest.js';
import { objectKindSchema } from '../policy/vocabulary.js';
import { INCIDENT_REASONS } from '../events.js';

/**
 * What the audit log records, and the shape of each record's details. Details carry no personal data in
 * the clear: only ids (object ids, pseudonyms, key ids), machine-readable reasons, counts and versions.
 * Every schema rejects unknown keys, and `personalDataProblems` runs first as a second line of defence
 * that also catches what a schema change might let through.
 */

/** Longest string accepted anywhere in details. */
export const MAX_DETAIL_STRING = 128;

const objectId = z.string().regex(OBJECT_ID_PATTERN, 'must be an object id (26 base32 characters)');
/** A keyed pseudonym from crypto/pseudonym.ts, such as `cam_5q2jxk7ymd3aqv4e`. */
const pseudonymOf = (kind: string) =>
  z.string().regex(new RegExp(`^${kind}_[a-z2-7]{16}$`), `must be a ${kind}_… pseudonym`);
const anyPseudonym = z.string().regex(/^[a-z][a-z0-9]{1,15}_[a-z2-7]{16}$/, 'must be a pseudonym (kind_…)');
const cameraPseudonym = pseudonymOf('cam');
/**
 * A paired app key's id (a fingerprint or short id, never the key or its owner's name); the same
 * alphabet as the consent ledger's `actor`, which may be base64.
 */
const keyId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:+/=-]{3,127}$/, 'must be a key id');
/** SHA-256 hex of a signed request: links a record to the consent ledger or the command that caused it. */
const requestDigest = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hex digest');
/** Machine-readable reason such as `consent.missing` or `CAMVEIL_E_UPLOAD_REJECTED`. */
const reason = z.string().regex(/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/, 'must be a machine-readable reason token');
const token = z.string().regex(/^[a-z][a-z0-9_.-]{0,31}$/, 'must be a lower-case token');
/** A consent name as the ledger spells it, e.g. `faceRecognition`. */
const feature = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,31}$/, 'must be a consent name');
const version = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/, 'must be a version string');
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** ISO 3166-1 alpha-2, optionally with a 3166-2 subdivision (e.g. `DE`, `US-IL`). */
const region = z.string().regex(/^[A-Z]{2}(-[A-Z0-9]{1,3})?$/, 'must be an ISO 3166 code');
const mode = z.enum(['cloud', 'local-only']);

/** The detail schema of every audit type; the keys of this map are the audit types. */
export const auditDetailSchemas = {
  'upload.allowed': z.strictObject({
    objectId,
    kind: objectKindSchema,
    camera: cameraPseudonym.optional(),
    zone: token.optional().describe('Residency zone of the endpoint'),
    bytes: count.optional(),
    policyVersion: version.optional(),
  }),
  'upload.denied': z.strictObject({
    objectId: objectId.optional(),
    kind: objectKindSchema,
    camera: cameraPseudonym.optional(),
    reason,
    policyVersion: version.optional(),
  }),
  'consent.changed': z.strictObject({
    state: z.enum(['granted', 'withdrawn', 'enrolled', 'unenrolled']),
    feature: feature.optional().describe('What the consent covers, e.g. faceRecognition (grant/withdraw)'),
    policyVersion: version,
    consentVersion: version.optional(),
    subject: anyPseudonym.optional().describe('Pseudonym of the person concerned (enrol/unenrol)'),
    minor: z.boolean().optional(),
    keyId: keyId.optional().describe('App key that signed the consent record'),
    ledgerSeq: count.optional().describe('Seq of the consent-ledger record'),
    requestDigest: requestDigest.optional(),
    reason: reason.optional().describe('Why, when nobody with authority to destroy asked: held-retention (held by an unsigned stop past its retention)'),
  }),
  'mode.changed': z.strictObject({ from: mode, to: mode, reason, policyVersion: version.optional() }),
  deletion: z.strictObject({
    scope: z.enum(['object', 'camera', 'person', 'retention', 'all']),
    count,
    reason,
    objectIds: z.array(objectId).max(256).optional(),
    camera: cameraPseudonym.optional(),
    subject: anyPseudonym.optional(),
    keyId: keyId.optional(),
    requestDigest: requestDigest.optional(),
  }),
  export: z.strictObject({
    scope: token.describe('What was exported, e.g. audit, objects'),
    count,
    recipients: count.describe('How many recipients it was encrypted to'),
    objectId: objectId.optional(),
    keyId: keyId.optional(),
    requestDigest: requestDigest.optional(),
  }),
  'key.paired': z.strictObject({ keyId, role: token.optional(), requestDigest: requestDigest.optional() }),
  'key.revoked': z.strictObject({ keyId, reason, requestDigest: requestDigest.optional() }),
  'face.recognition': z.strictObject({
    camera: cameraPseudonym,
    decision: z.enum(['allowed', 'denied']),
    reason,
    region: region.optional(),
    matched: count.optional(),
    unknown: count.optional(),
    subjects: z.array(anyPseudonym).max(64).optional().describe('Pseudonyms of matched people'),
    policyVersion: version.optional(),
  }),
  'face.templates': z.strictObject({
    subject: anyPseudonym.describe('Pseudonym of the enrolled person whose templates changed'),
    change: z.enum(['photos-added', 'is', 'is-not']).describe('photos added, or a correction: the sighting is / is not the person'),
    sighting: anyPseudonym.optional().describe('The corrected sighting (sight_…)'),
    count: count.optional(),
    kept: count.optional().describe('Photos kept sealed at the household request'),
    policyVersion: version,
    keyId: keyId.optional(),
    requestDigest: requestDigest.optional(),
  }),
  incident: z.strictObject({
    reason: z.enum(INCIDENT_REASONS).describe('The security incident (docs/mqtt-api.md, "Security events")'),
    suppressed: count.optional().describe('Incidents of this reason left out since the last record (rate limit)'),
    camera: cameraPseudonym.optional(),
  }),
  'policy.accepted': z.strictObject({
    policyVersion: version,
    keyId: keyId.optional(),
    material: z.boolean().optional(),
    ledgerSeq: count.optional(),
    requestDigest: requestDigest.optional(),
  }),
} as const;

export type AuditType = keyof typeof auditDetailSchemas;
export const AUDIT_TYPES = Object.keys(auditDetailSchemas) as AuditType[];
export type AuditDetails<T extends AuditType> = z.infer<(typeof auditDetailSchemas)[T]>;

export function isAuditType(value: string): value is AuditType {
  return Object.hasOwn(auditDetailSchemas, value);
}

/**
 * Words that, as a whole word of a key (`cameraName`, `owner_email`, `macAddress`), mean the value is
 * personal or secret. Whole words, so `machine` or `domain` do not trip `mac` or `ip`.
 */
const FORBIDDEN_KEY_WORDS = new Set([
  'name', 'names', 'firstname', 'lastname', 'fullname', 'username', 'user', 'email', 'mail', 'phone',
  'serial', 'serialnumber', 'sn', 'mac', 'hwaddr', 'imei', 'ip', 'ipv4', 'ipv6', 'host', 'hostname',
  'address', 'addr', 'url', 'uri', 'href', 'rtsp', 'password', 'passwd', 'pass', 'pwd', 'secret',
  'token', 'credential', 'credentials', 'identity', 'privatekey', 'embedding', 'embeddings',
  'descriptor', 'template', 'face', 'image', 'photo', 'frame', 'snapshot', 'ssid', 'location',
  'latitude', 'longitude', 'lat', 'lon', 'lng', 'gps', 'birthdate', 'dob',
]);

const VALUE_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  [/[^\s@]+@[^\s@]+\.[^\s@]+/, 'looks like an e-mail address'],
  [/[a-z][a-z0-9+.-]*:\/\/[^/\s]*@/i, 'is a URL with credentials'],
  [/[a-z][a-z0-9+.-]*:\/\//i, 'is a URL'],
  [/\b[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}\b/i, 'looks like a MAC address'],
  [/\b\d{1,3}(\.\d{1,3}){3}\b/, 'looks like an IPv4 address'],
  [/AGE-SECRET-KEY-/i, 'is a secret key'],
  // Narrow on purpose: key ids may be base64, which contains '/'.
  [/^(~|\.{1,2})?\/(home|Users|root|var|tmp|etc|mnt|media|data|srv|opt)\/|^[A-Za-z]:\\/, 'looks like a file path'],
];

/** An array of many numbers is what an embedding looks like; counts are scalars. */
const MAX_NUMBER_ARRAY = 16;

function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w.length > 0)
    .map((w) => w.toLowerCase());
}

/**
 * Every reason `details` may hold personal or secret data, as `path: reason`; empty when none is seen.
 * Values are never quoted in the result (they may be the very data that must not leak).
 */
export function personalDataProblems(details: unknown, path = 'details'): string[] {
  const problems: string[] = [];
  walk(details, path, 0, problems);
  return problems;
}

function walk(value: unknown, path: string, depth: number, problems: string[]): void {
  if (depth > 8) {
    problems.push(`${path}: nested too deep`);
    return;
  }
  if (typeof value === 'string') {
    if (value.length > MAX_DETAIL_STRING) problems.push(`${path}: longer than ${MAX_DETAIL_STRING} characters`);
    for (const [pattern, what] of VALUE_PATTERNS) {
      if (pattern.test(value)) {
        problems.push(`${path}: ${what}`);
        break;
      }
    }
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > MAX_NUMBER_ARRAY && value.every((v) => typeof v === 'number')) {
      problems.push(`${path}: a long array of numbers (embedding-like)`);
    }
    value.forEach((item, i) => walk(item, `${path}[${i}]`, depth + 1, problems));
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const bad = keyWords(key).find((w) => FORBIDDEN_KEY_WORDS.has(w));
      if (bad !== undefined || keyWords(key).join('').match(/e?mail|password|serial|embedding/) !== null) {
        problems.push(`${path}.${key}: key names personal or secret data`);
      }
      walk(item, `${path}.${key}`, depth + 1, problems);
    }
  }
}

/**
 * Every problem of `details` for `type` (personal data first, then the type's schema), as
 * `path: reason`; empty when the details may be recorded.
 */
export function auditDetailProblems(type: string, details: unknown): string[] {
  if (!isAuditType(type)) return [`type: unknown audit type`];
  const problems = personalDataProblems(details);
  const result = auditDetailSchemas[type].safeParse(details);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(`${['details', ...issue.path.map(String)].join('.')}: ${issue.message}`);
    }
  }
  return problems;
}
