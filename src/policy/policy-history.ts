import type { PolicyVersion } from './policy-version.js';

/**
 * The privacy-policy versions this release knows (docs/privacy.md): the 2014 policy (effective
 * 2014-10-11) and the 2021 Privacy Notice (revision and effective date 2021-10-31). The 2021 notice
 * changed the purposes and recipients (facial recognition, regional data centres), so it is material:
 * a household that accepted 2014 must accept it again before any data flows.
 */
export const SHIPPED_POLICY_VERSIONS: readonly PolicyVersion[] = Object.freeze([
  { version: '2014-10-11', material: true, publishedAt: '2014-10-11T00:00:00Z' },
  { version: '2021-10-31', material: true, publishedAt: '2021-10-31T00:00:00Z' },
]);

/** The versions this hub knows: the shipped ones and those the configuration adds. */
export function knownPolicyVersions(added: readonly PolicyVersion[]): PolicyVersion[] {
  return [...SHIPPED_POLICY_VERSIONS, ...added];
}

/**
 * The policy in force and its history, from the configuration. The schema has checked the version is
 * known; if it somehow is not, it is treated as a material version nobody accepted yet (fail closed).
 */
export function policyFromConfig(privacy: { policyVersion: string; policyHistory: readonly PolicyVersion[] }): {
  inForce: PolicyVersion;
  history: PolicyVersion[];
} {
  const history = knownPolicyVersions(privacy.policyHistory);
  const inForce = history.find((v) => v.version === privacy.policyVersion) ?? { version: privacy.policyVersion, material: true, publishedAt: new Date().toISOString() };
  return { inForce, history };
}
