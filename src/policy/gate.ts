/**
 * The gate: the single place that answers "may this data go there now?". Other modules ask it and never
 * re-implement its logic (see ARCHITECTURE.md). Decisions are pure: no I/O, no clock of their own.
 */

/** A gate's answer; `reason` is machine-readable (kebab-case) so the audit log and tests can match it. */
export interface GateDecision {
  allowed: boolean;
  reason: string;
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

/**
 * Placeholder that allows every upload. The issue "consent/policy" replaces it with the real gate
 * (consent ledger, region rules, device-model rules, local-only mode); callers already go through `Gate`.
 */
export const allowAllGate: Gate = {
  mayUpload: () => ({ allowed: true, reason: 'placeholder-allow-all' }),
};
