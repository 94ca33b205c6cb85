import { CamveilError } from '../errors.js';

/**
 * A published version of the privacy policy. `material` follows the policy's own definition of a material
 * change (Foscam Privacy Notice 2021, §7: purpose or type of processing, ownership, recipients, the user's
 * rights, the responsible department, a high-risk impact assessment). A material version must be accepted
 * again before data flows on; a non-material one (typo, contact detail) need not be.
 */
export interface PolicyVersion {
  version: string;
  material: boolean;
  /** ISO 8601 date-time; orders the versions. */
  publishedAt: string;
}

/** Version labels travel in MQTT payloads and the ledger: a short, safe alphabet. */
export const POLICY_VERSION_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function publishedMs(v: PolicyVersion): number {
  const ms = Date.parse(v.publishedAt);
  if (!POLICY_VERSION_LABEL.test(v.version) || Number.isNaN(ms)) {
    throw new CamveilError('CAMVEIL_E_POLICY_VERSION', `policy version "${v.version}" is malformed or has no valid publishedAt`, {
      where: 'policy.history',
    });
  }
  return ms;
}

/**
 * Whether the household must accept the policy again before cloud mode: true when it never accepted one,
 * when the accepted version is not in `history`/`inForce` (fail closed: we cannot tell what changed), or
 * when a material version was published after the accepted one, up to and including `inForce`. A newer
 * non-material version alone does not require it. An accepted version newer than `inForce` (a rollback)
 * needs nothing. Pure.
 *
 * @throws CamveilError `CAMVEIL_E_POLICY_VERSION` when an entry is malformed or one version label is
 * listed twice with different content.
 */
export function needsReacceptance(inForce: PolicyVersion, acceptedVersion: string | undefined, history: readonly PolicyVersion[]): boolean {
  const byLabel = new Map<string, PolicyVersion>();
  for (const v of [...history, inForce]) {
    publishedMs(v);
    const seen = byLabel.get(v.version);
    if (seen !== undefined && (seen.material !== v.material || Date.parse(seen.publishedAt) !== Date.parse(v.publishedAt))) {
      throw new CamveilError('CAMVEIL_E_POLICY_VERSION', `policy version "${v.version}" is listed twice with different content`, {
        where: 'policy.history',
      });
    }
    byLabel.set(v.version, v);
  }
  if (acceptedVersion === undefined) return true;
  if (acceptedVersion === inForce.version) return false;
  const accepted = byLabel.get(acceptedVersion);
  if (accepted === undefined) return true;
  const from = publishedMs(accepted);
  const to = publishedMs(inForce);
  return [...byLabel.values()].some((v) => v.material && publishedMs(v) > from && publishedMs(v) <= to);
}
