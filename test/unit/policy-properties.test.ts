import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConsentLedger, type ConsentState } from '../../src/policy/consent-ledger.js';
import { decide, modeOf, type Facts, type Question } from '../../src/policy/decide.js';
import type { PolicyVersion } from '../../src/policy/policy-version.js';
import { REGION_RULES, STRICTEST_RULE, rulesFor, type RegionRule } from '../../src/policy/region-rules.js';
import { CONSENT_NAMES, OBJECT_KINDS, type ConsentName } from '../../src/policy/vocabulary.js';

/*
 * Property tests: decide() against a reference oracle written independently, as one boolean formula per
 * question, straight from the rules in the brief. Equality means both directions: decide never allows
 * what the rules forbid, and allows everything they allow.
 */

// ---- the oracle -------------------------------------------------------------------------------------

const ZONES = ['eu', 'us', 'cn', 'global'];
const FACE_KINDS = ['face-embedding', 'face-album'];

/** Its own region lookup: exact key, else the country part, else the strictest rule. */
function oracleRule(code: string): RegionRule {
  const c = code.trim().toUpperCase();
  if (!/^[A-Z]{2}(-[A-Z0-9]{1,3})?$/.test(c)) return STRICTEST_RULE;
  const exact = Object.hasOwn(REGION_RULES, c) ? REGION_RULES[c] : undefined;
  const country = Object.hasOwn(REGION_RULES, c.slice(0, 2)) ? REGION_RULES[c.slice(0, 2)] : undefined;
  return exact ?? country ?? STRICTEST_RULE;
}

interface World {
  /** undefined = the ledger is unreadable. */
  consent: { cloudUpload: boolean; faceRecognition: boolean; crossBorderTransfer: boolean; localRecording: boolean } | undefined;
  accepted: string | undefined;
  /** Published policies, oldest first; the last is in force. */
  published: { label: string; material: boolean }[];
  regionCode: string;
  forcedLocalOnly: boolean;
  camera: { faceRecognitionEnabled: boolean; faceCapable: boolean } | undefined;
  hubZone: string;
}

function oraclePolicyOk(w: World): boolean {
  const i = w.published.findIndex((p) => p.label === w.accepted);
  if (i < 0) return false; // never accepted, or accepted something never published
  return !w.published.slice(i + 1).some((p) => p.material);
}

function oracle(q: Question, w: World): boolean {
  const rule = oracleRule(w.regionCode);
  const c = w.consent;
  const policyOk = oraclePolicyOk(w);
  const faceOk =
    c !== undefined && rule.faceRecognition !== 'prohibited' && policyOk && w.camera !== undefined && w.camera.faceCapable && w.camera.faceRecognitionEnabled && c.faceRecognition;
  switch (q.kind) {
    case 'upload': {
      const dest = q.zone ?? w.hubZone;
      const domestic = dest === rule.residencyZone && dest === w.hubZone;
      return (
        c !== undefined &&
        !w.forcedLocalOnly &&
        policyOk &&
        c.cloudUpload &&
        ZONES.includes(dest) &&
        (domestic || (rule.crossBorder !== 'forbidden' && c.crossBorderTransfer)) &&
        (!FACE_KINDS.includes(q.dataKind) || (rule.faceRecognition !== 'prohibited' && c.faceRecognition))
      );
    }
    case 'face-recognition':
      return faceOk;
    case 'local-recording':
      return c !== undefined && c.localRecording;
    case 'object-detection':
      return rule.objectDetection !== 'prohibited';
    case 'alert':
      if (q.alertKind === 'object') return rule.objectDetection !== 'prohibited';
      return q.alertKind === 'motion' || q.alertKind === 'camera-offline' ? true : faceOk;
  }
}

const oracleCloud = (w: World): boolean => w.consent !== undefined && !w.forcedLocalOnly && oraclePolicyOk(w) && w.consent.cloudUpload;

// ---- questions and facts ----------------------------------------------------------------------------

const QUESTIONS: Question[] = [
  ...OBJECT_KINDS.flatMap((dataKind) => [undefined, ...ZONES, 'mars'].map((zone): Question => (zone === undefined ? { kind: 'upload', dataKind } : { kind: 'upload', dataKind, zone }))),
  { kind: 'face-recognition', cameraId: 'front' },
  { kind: 'local-recording', cameraId: 'front' },
  { kind: 'object-detection', cameraId: 'front' },
  ...(['motion', 'object', 'known-face', 'unknown-face', 'camera-offline'] as const).map((alertKind): Question => ({ kind: 'alert', alertKind })),
];

const DAY = 86_400_000;
function toPolicy(published: World['published']): Facts['policy'] {
  const versions: PolicyVersion[] = published.map((p, i) => ({ version: p.label, material: p.material, publishedAt: new Date(Date.UTC(2026, 0, 1) + i * DAY).toISOString() }));
  return { inForce: versions[versions.length - 1]!, history: versions };
}

function factsOf(w: World, consent: ConsentState | 'unreadable'): Facts {
  return {
    consent,
    region: rulesFor(w.regionCode),
    policy: toPolicy(w.published),
    mode: { forcedLocalOnly: w.forcedLocalOnly },
    ...(w.camera !== undefined ? { camera: w.camera } : {}),
    hubZone: w.hubZone,
  };
}

function checkAll(w: World, consent: ConsentState | 'unreadable'): void {
  const f = factsOf(w, consent);
  for (const q of QUESTIONS) {
    const d = decide(q, f);
    const expected = oracle(q, w);
    if (d.allowed !== expected || (d.reason === 'ok') !== d.allowed) {
      throw new Error(`decide(${JSON.stringify(q)}) = ${JSON.stringify(d)}, oracle says ${expected}; world ${JSON.stringify(w)}`);
    }
  }
  const mode = modeOf(f);
  expect(mode.mode === 'cloud').toBe(oracleCloud(w));
  // The rules, spelled out once more as plain safety statements.
  const rule = oracleRule(w.regionCode);
  const face = decide({ kind: 'face-recognition', cameraId: 'front' }, f).allowed;
  if (face) {
    expect(rule.faceRecognition).not.toBe('prohibited');
    expect(w.camera?.faceCapable && w.camera.faceRecognitionEnabled).toBe(true);
    expect(w.consent?.faceRecognition).toBe(true);
  }
  if (decide({ kind: 'upload', dataKind: 'clip' }, f).allowed) {
    expect(w.consent?.cloudUpload).toBe(true);
    expect(oraclePolicyOk(w)).toBe(true);
    expect(w.forcedLocalOnly).toBe(false);
  }
}

// ---- arbitraries ------------------------------------------------------------------------------------

const regionCodeArb = fc.oneof(
  fc.constantFrom(...Object.keys(REGION_RULES)),
  fc.constantFrom('JP', 'XX', 'BR', 'ZZ', 'US-NY', 'US-OR', 'DE-BY', 'CN-GD', 'us-il', '', 'EU', 'USA'),
);
const cameraArb = fc.option(fc.record({ faceRecognitionEnabled: fc.boolean(), faceCapable: fc.boolean() }), { nil: undefined });
/** Usually the region's own zone; sometimes a disagreeing one, which must count as a transfer. */
const hubZoneArb = (code: string) => fc.oneof({ weight: 4, arbitrary: fc.constant(rulesFor(code).residencyZone as string) }, { weight: 1, arbitrary: fc.constantFrom(...ZONES) });
const envArb = regionCodeArb.chain((regionCode) =>
  fc.record({ regionCode: fc.constant(regionCode), forcedLocalOnly: fc.boolean(), camera: cameraArb, hubZone: hubZoneArb(regionCode) }),
);

type Op =
  | { t: 'grant' | 'withdraw'; consent: ConsentName }
  | { t: 'accept'; pick: 'in-force' | 'published' | 'bogus'; index: number }
  | { t: 'publish'; material: boolean }
  | { t: 'restart' }
  | { t: 'env'; env: Pick<World, 'regionCode' | 'forcedLocalOnly' | 'camera' | 'hubZone'> };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constantFrom('grant' as const, 'withdraw' as const), consent: fc.constantFrom(...CONSENT_NAMES) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('accept' as const), pick: fc.constantFrom('in-force' as const, 'published' as const, 'bogus' as const), index: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('publish' as const), material: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ t: 'restart' as const }) },
  { weight: 1, arbitrary: envArb.map((env) => ({ t: 'env' as const, env })) },
);

// ---- the properties ---------------------------------------------------------------------------------

describe('decide, property-based', () => {
  it('matches the oracle on random facts (pure)', () => {
    const consentArb = fc.record({ cloudUpload: fc.boolean(), faceRecognition: fc.boolean(), crossBorderTransfer: fc.boolean(), localRecording: fc.boolean() });
    const arb = fc.record({
      env: envArb,
      consent: fc.option(consentArb, { nil: undefined, freq: 8 }),
      published: fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }),
      accepted: fc.oneof(fc.nat(6).map((i) => `v${i}`), fc.constant(undefined), fc.constant('bogus')),
    });
    fc.assert(
      fc.property(arb, ({ env, consent, published, accepted }) => {
        const w: World = { ...env, consent, accepted, published: published.map((material, i) => ({ label: `v${i}`, material })) };
        const state: ConsentState | 'unreadable' =
          consent === undefined ? 'unreadable' : { ...consent, ...(accepted !== undefined ? { acceptedPolicyVersion: accepted } : {}), seq: 1 };
        checkAll(w, state);
      }),
      { numRuns: 3000 },
    );
  });

  it('matches the oracle through random ledger histories, publications and restarts (SQLite file)', () => {
    // In about one run in five a corrupt row is written after step `corruptAt`; the ledger is append-only,
    // so from there on it stays unreadable (and every consent-governed answer must be no).
    const arb = fc.record({ env: envArb, ops: fc.array(opArb, { maxLength: 30 }), corruptAt: fc.option(fc.nat(30), { nil: undefined, freq: 4 }) });
    fc.assert(
      fc.property(arb, ({ env, ops, corruptAt }) => {
        const dir = mkdtempSync(join(tmpdir(), 'camveil-prop-'));
        const file = join(dir, 'hub.db');
        let clock = Date.UTC(2026, 10, 23);
        const open = (): [Database.Database, ConsentLedger] => {
          const db = new Database(file);
          return [db, new ConsentLedger(db, { now: () => new Date((clock += 1000)) })];
        };
        let [db, ledger] = open();
        const w: World = {
          ...env,
          consent: { cloudUpload: false, faceRecognition: false, crossBorderTransfer: false, localRecording: false },
          accepted: undefined,
          published: [{ label: 'v0', material: true }],
        };
        let corrupt = false;
        const digest = 'cd'.repeat(32);
        try {
          for (const [step, op] of ops.entries()) {
            const inForce = w.published[w.published.length - 1]!.label;
            const ctx = { actor: 'key_1', policyVersion: inForce, requestDigest: digest };
            switch (op.t) {
              case 'grant':
              case 'withdraw':
                ledger[op.t](op.consent, ctx);
                if (w.consent) w.consent[op.consent] = op.t === 'grant';
                break;
              case 'accept': {
                const label =
                  op.pick === 'in-force' ? inForce : op.pick === 'bogus' ? `never-${op.index}` : w.published[op.index % w.published.length]!.label;
                ledger.acceptPolicy(label, { actor: 'key_1', requestDigest: digest });
                w.accepted = label;
                break;
              }
              case 'publish':
                w.published.push({ label: `v${w.published.length}`, material: op.material });
                break;
              case 'restart':
                db.close();
                [db, ledger] = open();
                break;
              case 'env':
                Object.assign(w, op.env);
                break;
            }
            if (step === corruptAt) {
              db.pragma('ignore_check_constraints = ON');
              db.prepare(
                `INSERT INTO policy_consent_ledger (seq, at, actor, kind, consent, policy_version, request_digest)
                 SELECT COALESCE(MAX(seq), 0) + 1, '2026-11-23T00:00:00.000Z', 'key_1', 'grant', 'everything', 'v0', ? FROM policy_consent_ledger`,
              ).run(digest);
              db.pragma('ignore_check_constraints = OFF');
              corrupt = true;
            }
            let consent: ConsentState | 'unreadable';
            try {
              consent = ledger.currentConsent();
            } catch {
              consent = 'unreadable';
            }
            // The ledger agrees with the model, and is unreadable exactly when corrupted.
            expect(consent === 'unreadable').toBe(corrupt);
            if (consent !== 'unreadable') {
              expect(consent).toMatchObject({ ...w.consent, seq: expect.any(Number) as number });
              expect(consent.acceptedPolicyVersion).toBe(w.accepted);
            }
            checkAll({ ...w, consent: corrupt ? undefined : w.consent }, consent);
          }
        } finally {
          db.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 150 },
    );
  });
});
