import type { AuditLog } from '../../audit/audit-log.js';
import type { Logger } from '../../log.js';
import type { GateDecision } from '../../policy/gate.js';

export interface RecognitionAuditOptions {
  audit: AuditLog;
  logger: Logger;
  cameraPseudonym: (cameraId: string) => string;
  /** Recorded with each record when it is an ISO 3166 code. */
  region?: string;
  policyVersion?: string;
  /** At most one record per camera per interval (default 60 000 ms). */
  auditIntervalMs?: number;
  /** Elapsed time the interval is measured on. */
  now: () => number;
}

interface AuditWindow {
  lastAt: number;
  /** `allowed:reason` of the last record. */
  lastKey: string | undefined;
  matched: number;
  unknown: number;
  subjects: Set<string>;
}

const ISO_REGION = /^[A-Z]{2}(-[A-Z0-9]{1,3})?$/;

/**
 * The face stage's `face.recognition` audit trail: the gate's decisions per camera, and the sightings made
 * under an allowed one, folded into at most one record per camera per interval.
 */
export class RecognitionAudit {
  readonly #o: RecognitionAuditOptions;
  readonly #windows = new Map<string, AuditWindow>();

  constructor(options: RecognitionAuditOptions) {
    this.#o = options;
  }

  /** A sighting made on `cameraId`: carried by the next record; `personId` for a known face. */
  sighted(cameraId: string, personId?: string): void {
    const w = this.#window(cameraId);
    if (personId === undefined) {
      w.unknown += 1;
      return;
    }
    w.matched += 1;
    w.subjects.add(personId);
  }

  /**
   * Records the gate's decision for a camera when it (or its reason) changed since the last record, or,
   * while allowed, to carry the sightings since the last one; never twice within the interval. A camera
   * that stays denied for the same reason is recorded once, not every minute of motion.
   */
  decided(cameraId: string, decision: GateDecision): void {
    const w = this.#window(cameraId);
    const now = this.#o.now();
    if (now - w.lastAt < (this.#o.auditIntervalMs ?? 60_000)) return;
    const key = `${decision.allowed}:${decision.reason}`;
    if (key === w.lastKey && (!decision.allowed || w.matched + w.unknown === 0)) return;
    w.lastAt = now;
    w.lastKey = key;
    const region = this.#o.region !== undefined && ISO_REGION.test(this.#o.region) ? { region: this.#o.region } : {};
    const seen = w.matched + w.unknown > 0 ? { matched: w.matched, unknown: w.unknown, subjects: [...w.subjects].slice(0, 64) } : {};
    try {
      this.#o.audit.append('face.recognition', {
        camera: this.#o.cameraPseudonym(cameraId),
        decision: decision.allowed ? 'allowed' : 'denied',
        reason: decision.reason,
        ...region,
        ...seen,
        ...(this.#o.policyVersion === undefined ? {} : { policyVersion: this.#o.policyVersion }),
      });
    } catch (error) {
      this.#o.logger.warn({ err: error }, 'face stage: audit record refused');
    }
    w.matched = 0;
    w.unknown = 0;
    w.subjects.clear();
  }

  #window(cameraId: string): AuditWindow {
    let w = this.#windows.get(cameraId);
    if (w === undefined) {
      w = { lastAt: Number.NEGATIVE_INFINITY, lastKey: undefined, matched: 0, unknown: 0, subjects: new Set() };
      this.#windows.set(cameraId, w);
    }
    return w;
  }
}
