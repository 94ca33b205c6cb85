import { REGION_RULES, STRICTEST_RULE, type RegionRule } from './region-rules-data.js';

export type { Citation, CrossBorderRule, FaceRecognitionRule, ObjectDetectionRule, RegionRule } from './region-rules-data.js';
export { REGION_RULES, STRICTEST_RULE } from './region-rules-data.js';

/** A region rule with the table key it came from (`US-IL`, `US`, or `ZZ` for the strictest default). */
export type MatchedRegionRule = RegionRule & { matched: string };

/** The code `rulesFor` reports when it fell back to STRICTEST_RULE. */
export const UNKNOWN_REGION = 'ZZ';

/** Same shape as the config's `regionCode`: ISO 3166-1 alpha-2 or ISO 3166-2. */
const REGION_CODE = /^[A-Z]{2}(-[A-Z0-9]{1,3})?$/;

/**
 * The rules for a hub's region, most specific first: `US-IL` → the `US-IL` row, `US-NY` → the `US` row.
 * An unknown, missing or malformed region gets STRICTEST_RULE with `matched: 'ZZ'` — never an error,
 * because the answer must fail closed rather than stop the hub. Case and surrounding space are ignored.
 */
export function rulesFor(region: string | undefined): MatchedRegionRule {
  const code = (region ?? '').trim().toUpperCase();
  if (REGION_CODE.test(code)) {
    const country = code.slice(0, 2);
    for (const key of code === country ? [code] : [code, country]) {
      // Object.hasOwn: a code like "__" cannot match, but never let a prototype key stand in for a rule.
      const rule = Object.hasOwn(REGION_RULES, key) ? REGION_RULES[key] : undefined;
      if (rule !== undefined) return { ...rule, matched: key };
    }
  }
  return { ...STRICTEST_RULE, matched: UNKNOWN_REGION };
}
