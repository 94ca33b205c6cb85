import type { AuditLog } from '../audit/audit-log.js';
import type { ConsentLedger } from './consent-ledger.js';
import { decide, modeOf, type Decision, type Facts, type Question } from './decide.js';
import type { PolicyVersion } from './policy-version.js';
import { readConsent } from './read-consent.js';
import { rulesFor, type MatchedRegionRule } from './region-rules.js';
import { OBJECT_KINDS, type ObjectKind } from './vocabulary.js';
import { isHeld } from './withdrawal.js';

/**
 * The gate: the single place that answers "may this data go there now?". Every upload, every face
 * analysis, every face-template upload and every alert asks it; nothing else re-implements the logic,
 * which lives in the pure `decide` (decide.ts). The gate gathers the facts at the moment of the question:
 * the consent ledger as it is now (so a withdrawal written by another process counts at once), the region
 * rules, the policy version in force, the configuration.
 */

/** A gate's answer; `reason` is machine-readable (kebab-case) so the audit log and tests can match it. */
export interface GateDecision {
  allowed: boolean;
  reason: string;
}

/** See {@link PolicyGate.faceData}. */
export interface FaceDataStanding {
  use: GateDecision;
  fate: 'keep' | 'hold' | 'delete' | 'unknown';
}

/** What the uplink knows about an object when it asks whether it may upload it. */
export interface UploadCandidate {
  objectId: string;
  kind: string;
  cameraId?: string;
}

export interface Gate {
  /** Asked right before every upload attempt; a denial must leave the object on the hub, unsent. */
  mayUpload(item: UploadCandidate): GateDecision;
}

export interface PolicyGateOptions {
  ledger: ConsentLedger;
  region: string;
  policy: { inForce: PolicyVersion; history: readonly PolicyVersion[] };
  forcedLocalOnly: boolean;
  /** Per camera: whether the household switched faces on for it and whether the device is capable. */
  cameras: () => ReadonlyMap<string, { faceRecognitionEnabled: boolean; faceCapable: boolean }>;
  audit?: AuditLog;
  /** Camera ids are audited only as pseudonyms. */
  cameraPseudonym: (cameraId: string) => string;
  /** The region table lookup; `rulesFor` (the shipped table) unless a test gives a region of its own. */
  rulesFor?: (region: string) => MatchedRegionRule;
}

export class PolicyGate implements Gate {
  readonly #o: PolicyGateOptions;

  constructor(options: PolicyGateOptions) {
    this.#o = options;
  }

  /** The facts now. An unreadable ledger is a fact too: everything it guards is then refused. */
  facts(cameraId?: string): Facts {
    const consent = readConsent(this.#o.ledger);
    const region = (this.#o.rulesFor ?? rulesFor)(this.#o.region);
    const facts: Facts = {
      consent,
      region,
      policy: this.#o.policy,
      mode: { forcedLocalOnly: this.#o.forcedLocalOnly },
      hubZone: region.residencyZone,
    };
    const camera = cameraId === undefined ? undefined : this.#o.cameras().get(cameraId);
    if (camera !== undefined) facts.camera = camera;
    return facts;
  }

  mode(): { mode: 'cloud' | 'local-only'; reason: string } {
    return modeOf(this.facts());
  }

  ask(question: Question, cameraId?: string): Decision {
    return decide(question, this.facts(cameraId));
  }

  mayUpload(item: UploadCandidate): GateDecision {
    const kind = (OBJECT_KINDS as readonly string[]).includes(item.kind) ? (item.kind as ObjectKind) : undefined;
    // An object kind the gate does not know is refused: it cannot say what rules apply.
    const decision: GateDecision = kind === undefined ? { allowed: false, reason: 'unknown-data-kind' } : this.ask({ kind: 'upload', dataKind: kind });
    if (kind !== undefined) this.#auditUpload(item, kind, decision);
    return decision;
  }

  /**
   * Whether stored objects are staged for upload now (the hub is in cloud mode): asked before an object is
   * linked into the upload staging and again in the transaction that queues it. Each upload still asks
   * {@link PolicyGate.mayUpload} right before it is sent.
   */
  mayQueueUploads(): GateDecision {
    const { mode, reason } = this.mode();
    return { allowed: mode === 'cloud', reason };
  }

  mayRecordLocally(cameraId: string): GateDecision {
    return this.ask({ kind: 'local-recording', cameraId }, cameraId);
  }

  /**
   * Whether faces may be enrolled at all now: making a template is biometric processing, so it needs
   * what recognition needs on some camera — a region that does not prohibit it, the household's consent
   * and an accepted policy (the per-camera switch and device model are then for the cameras to pass).
   */
  mayEnrolFaces(): GateDecision {
    const facts = this.facts();
    facts.camera = { faceRecognitionEnabled: true, faceCapable: true };
    return decide({ kind: 'face-recognition', cameraId: '(enrolment)' }, facts);
  }

  mayRecogniseFaces(cameraId: string): GateDecision {
    return this.ask({ kind: 'face-recognition', cameraId }, cameraId);
  }

  /**
   * Whether the objects analyser may label what moved on this camera: only the region rules decide
   * (decide.ts); no consent, no withdrawal and no policy acceptance changes it, as for motion detection.
   */
  mayDetectObjects(cameraId: string): GateDecision {
    return this.ask({ kind: 'object-detection', cameraId }, cameraId);
  }

  /**
   * Where the face data recognition has made (sightings, face albums) stands now. `use`: whether more may
   * be made, as for enrolment (region, policy acceptance, faceRecognition consent). `fate`: what becomes of
   * what exists — `keep` while the consent stands (also while the region or a policy not yet accepted
   * pauses its use), `hold` while only unsigned withdrawals stopped it and the region's template retention
   * has not run out (withdrawal.ts), `delete` after a signed or console withdrawal, an erased ledger or the
   * end of the hold, `unknown` while the ledger cannot be read (then nothing changes).
   */
  faceData(now: Date = new Date()): FaceDataStanding {
    const facts = this.facts();
    const use = this.mayEnrolFaces();
    if (facts.consent === 'unreadable') return { use, fate: 'unknown' };
    if (facts.consent.faceRecognition) return { use, fate: 'keep' };
    let records;
    try {
      records = this.#o.ledger.records();
    } catch {
      return { use, fate: 'unknown' };
    }
    const held = isHeld(records, 'faceRecognition', { maxDays: facts.region.maxTemplateRetentionDays, now });
    return { use, fate: held ? 'hold' : 'delete' };
  }

  #auditUpload(item: UploadCandidate, kind: ObjectKind, decision: GateDecision): void {
    const audit = this.#o.audit;
    if (audit === undefined) return;
    const camera = item.cameraId === undefined ? {} : { camera: this.#o.cameraPseudonym(item.cameraId) };
    const policyVersion = this.#o.policy.inForce.version;
    if (decision.allowed) audit.append('upload.allowed', { objectId: item.objectId, kind, ...camera, zone: (this.#o.rulesFor ?? rulesFor)(this.#o.region).residencyZone, policyVersion });
    else audit.append('upload.denied', { objectId: item.objectId, kind, ...camera, reason: decision.reason, policyVersion });
  }
}
