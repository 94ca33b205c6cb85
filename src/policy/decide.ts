import { CamveilError } from '../errors.js';
import type { ConsentState } from './consent-ledger.js';
import { needsReacceptance, type PolicyVersion } from './policy-version.js';
import type { MatchedRegionRule } from './region-rules.js';
import { RESIDENCY_ZONES, type AlertKind, type ObjectKind } from './vocabulary.js';

/**
 * THE decision: may this data flow happen now? Pure — no I/O, no clock — so the gate can call it for
 * every object and the audit log can record the reason. Everything not allowed below is denied.
 *
 * Our promises (never weaker than the region table, which records only the law):
 * - Face recognition needs the household's faceRecognition consent in every region, also where the law
 *   says `allowed`: the policy makes it opt-in — "You can enable facial recognition in certain countries
 *   and regions and on certain device models … After this is enabled, we will recognize the facial
 *   features …" — and switchable — "You can deactivate the facial recognition service on the app at any
 *   time." (Foscam Privacy Notice 2021, §1.1, "Information for facial recognition").
 * - Any upload outside the home residency zone needs crossBorderTransfer consent, also where the law
 *   says `allowed`: "If Foscam Cloud is involved in the transfer of your personal information abroad, it
 *   will clearly inform you of the matter and first obtain your consent" (ibid. §3.6(1)). `forbidden`
 *   means never.
 * - Consent is bound to the policy version: after a material change (ibid. §7) the hub is local-only, and
 *   face recognition pauses, until the household accepts the new version (docs/architecture.md, "Policy").
 *   Consent given under the old purposes is not informed consent for the new ones.
 */

export type Question =
  /** `zone`: the residency zone of the destination; absent = the hub's own zone. */
  | { kind: 'upload'; dataKind: ObjectKind; zone?: string }
  | { kind: 'face-recognition'; cameraId: string }
  | { kind: 'local-recording'; cameraId: string }
  /** Labelling what moved on a camera (person, animal, vehicle) on the hub. */
  | { kind: 'object-detection'; cameraId: string }
  | { kind: 'alert'; alertKind: AlertKind };

export interface Facts {
  /** The ledger's fold, or 'unreadable' when reading it threw CAMVEIL_E_CONSENT_UNREADABLE. */
  consent: ConsentState | 'unreadable';
  region: MatchedRegionRule;
  policy: { inForce: PolicyVersion; history: readonly PolicyVersion[] };
  mode: { forcedLocalOnly: boolean };
  /** The camera the question concerns (face questions); absent = unknown = no faces. */
  camera?: { faceRecognitionEnabled: boolean; faceCapable: boolean };
  /** The residency zone of the hub's region; normally `region.residencyZone`. */
  hubZone: string;
}

/** Every reason decide/modeOf can give; stable strings for the audit log, MQTT state and tests. */
export const DECISION_REASONS = [
  'ok',
  'consent-unreadable',
  'policy-invalid',
  'local-only-configured',
  'policy-not-accepted',
  'cloud-upload-withdrawn',
  'unknown-zone',
  'cross-border-forbidden',
  'cross-border-consent-missing',
  'region-prohibits-face-recognition',
  'region-prohibits-object-detection',
  'camera-unknown',
  'device-not-capable',
  'camera-face-off',
  'face-consent-missing',
  'local-recording-withdrawn',
] as const;
export type DecisionReason = (typeof DECISION_REASONS)[number];

export interface Decision {
  allowed: boolean;
  reason: DecisionReason;
}

const ok: Decision = { allowed: true, reason: 'ok' };
const deny = (reason: Exclude<DecisionReason, 'ok'>): Decision => ({ allowed: false, reason });

/** Data kinds that carry biometric identity: they follow the face rules on top of the upload rules. */
const FACE_DATA: ReadonlySet<ObjectKind> = new Set(['face-embedding', 'face-album']);

/** True when the accepted policy is current; 'invalid' when the version history itself is malformed. */
function policyAccepted(consent: ConsentState, policy: Facts['policy']): boolean | 'invalid' {
  try {
    return !needsReacceptance(policy.inForce, consent.acceptedPolicyVersion, policy.history);
  } catch (error) {
    if (error instanceof CamveilError && error.code === 'CAMVEIL_E_POLICY_VERSION') return 'invalid';
    throw error;
  }
}

/**
 * Cloud or local-only, and why. Local-only (fail closed) when the ledger is unreadable, the config forces
 * it, the policy history is malformed, the policy in force (or a material one before it) is not accepted,
 * or cloudUpload was never granted or was withdrawn. `reason` is 'ok' in cloud mode.
 */
export function modeOf(facts: Facts): { mode: 'cloud' | 'local-only'; reason: DecisionReason } {
  const d = cloudGate(facts);
  return { mode: d.allowed ? 'cloud' : 'local-only', reason: d.reason };
}

function cloudGate(facts: Facts): Decision {
  if (facts.consent === 'unreadable') return deny('consent-unreadable');
  if (facts.mode.forcedLocalOnly) return deny('local-only-configured');
  const accepted = policyAccepted(facts.consent, facts.policy);
  if (accepted === 'invalid') return deny('policy-invalid');
  if (!accepted) return deny('policy-not-accepted');
  if (!facts.consent.cloudUpload) return deny('cloud-upload-withdrawn');
  return ok;
}

/** The face rules, shared by face recognition and face alerts (an alert is only as allowed as its source). */
function faceGate(facts: Facts): Decision {
  if (facts.consent === 'unreadable') return deny('consent-unreadable');
  if (facts.region.faceRecognition === 'prohibited') return deny('region-prohibits-face-recognition');
  const accepted = policyAccepted(facts.consent, facts.policy);
  if (accepted === 'invalid') return deny('policy-invalid');
  if (!accepted) return deny('policy-not-accepted');
  if (facts.camera === undefined) return deny('camera-unknown');
  if (!facts.camera.faceCapable) return deny('device-not-capable');
  if (!facts.camera.faceRecognitionEnabled) return deny('camera-face-off');
  // 'explicit-consent' and 'allowed' alike: our promise asks everywhere (see the file comment).
  if (!facts.consent.faceRecognition) return deny('face-consent-missing');
  return ok;
}

/**
 * The object rule, shared by object detection and object alerts: only the region can refuse it. It
 * identifies no one (region-rules-data.ts, OBJECT_DETECTION), so like motion detection it is tied to no
 * consent and no policy acceptance, and an unreadable ledger does not stop it.
 */
function objectGate(facts: Facts): Decision {
  return facts.region.objectDetection === 'prohibited' ? deny('region-prohibits-object-detection') : ok;
}

function uploadGate(q: Extract<Question, { kind: 'upload' }>, facts: Facts): Decision {
  const cloud = cloudGate(facts);
  if (!cloud.allowed || facts.consent === 'unreadable') return cloud;
  const destination = q.zone ?? facts.hubZone;
  if (!(RESIDENCY_ZONES as readonly string[]).includes(destination)) return deny('unknown-zone');
  // Domestic only when the destination is the zone the law names and the hub's own zone; if the two
  // facts disagree, treat it as a transfer (fail closed).
  if (destination !== facts.region.residencyZone || destination !== facts.hubZone) {
    if (facts.region.crossBorder === 'forbidden') return deny('cross-border-forbidden');
    if (!facts.consent.crossBorderTransfer) return deny('cross-border-consent-missing');
  }
  if (FACE_DATA.has(q.dataKind)) {
    // Templates and albums leave the hub age-encrypted, but they are still biometric data of people who
    // consented to face recognition only: no face consent, no face upload. The camera is not asked here:
    // the data already exists (enrolment photos come from the app, not a camera).
    if (facts.region.faceRecognition === 'prohibited') return deny('region-prohibits-face-recognition');
    if (!facts.consent.faceRecognition) return deny('face-consent-missing');
  }
  // 'export' is a bundle the household asked for; a caller that puts face data in it asks for that part
  // separately as 'face-embedding' / 'face-album'.
  return ok;
}

/**
 * Decides one question. Pure and total: it never throws for well-typed input.
 *
 * - upload: the cloud-mode rules (modeOf), then residency (destination zone vs. the region's zone and
 *   crossBorder rule), then, for face data, the face rules.
 * - face-recognition (on the hub): region, policy acceptance, camera capability and switch, consent.
 * - local-recording: readable ledger and localRecording consent. Not tied to policy acceptance or cloud
 *   mode: local-only mode keeps recording to the hub's encrypted store, that is its point.
 * - object-detection (on the hub): the region rules only (objectGate).
 * - alert: known-face / unknown-face alerts carry identity and follow the face rules; an object alert is
 *   only as allowed as object detection (the region). Motion, object and camera-offline alerts are
 *   age-sealed events to the household's own phones over MQTT: no cloud upload, no biometric data, so
 *   neither cloudUpload nor faceRecognition consent applies, and they are allowed even when the ledger is
 *   unreadable (a damaged ledger should not hide that a camera went offline).
 */
export function decide(question: Question, facts: Facts): Decision {
  switch (question.kind) {
    case 'upload':
      return uploadGate(question, facts);
    case 'face-recognition':
      return faceGate(facts);
    case 'local-recording':
      if (facts.consent === 'unreadable') return deny('consent-unreadable');
      return facts.consent.localRecording ? ok : deny('local-recording-withdrawn');
    case 'object-detection':
      return objectGate(facts);
    case 'alert':
      switch (question.alertKind) {
        case 'motion':
        case 'camera-offline':
          return ok;
        case 'object':
          return objectGate(facts);
        case 'known-face':
        case 'unknown-face':
          return faceGate(facts);
      }
  }
}

const CONSENT_REASONS: ReadonlySet<DecisionReason> = new Set([
  'cloud-upload-withdrawn',
  'policy-not-accepted',
  'cross-border-consent-missing',
  'face-consent-missing',
  'local-recording-withdrawn',
]);

/**
 * The error for a denial that a consent would lift (for MQTT error replies and the CLI):
 * `CAMVEIL_E_CONSENT_UNREADABLE` for 'consent-unreadable', `CAMVEIL_E_CONSENT_REQUIRED` for a missing
 * consent or policy acceptance; undefined for an allowed decision or a denial no consent can lift.
 */
export function consentErrorFor(decision: Decision, where?: string): CamveilError | undefined {
  if (decision.reason === 'consent-unreadable') {
    return new CamveilError('CAMVEIL_E_CONSENT_UNREADABLE', 'the consent ledger cannot be read; refusing', { where });
  }
  if (CONSENT_REASONS.has(decision.reason)) {
    return new CamveilError('CAMVEIL_E_CONSENT_REQUIRED', `refused: ${decision.reason}`, { where });
  }
  return undefined;
}
