import { describe, expect, it } from 'vitest';
import { CamveilError } from '../../src/errors.js';
import { needsReacceptance, type PolicyVersion } from '../../src/policy/policy-version.js';

const v = (version: string, material: boolean, day: number): PolicyVersion => ({
  version,
  material,
  publishedAt: new Date(Date.UTC(2026, 0, day)).toISOString(),
});
const v1 = v('1', true, 1);
const v1a = v('1.1', false, 2);
const v2 = v('2', true, 3);
const v2a = v('2.1', false, 4);
const history = [v1, v1a, v2, v2a];

describe('needsReacceptance', () => {
  it.each([
    ['never accepted', v1, undefined, true],
    ['accepted the one in force', v2, '2', false],
    ['non-material change since', v1a, '1', false],
    ['material change since', v2, '1', true],
    ['material change before a non-material one in force', v2a, '1.1', true],
    ['non-material after the accepted material', v2a, '2', false],
    ['accepted a version nobody published', v2, '9', true],
    ['accepted a newer version than in force (rollback)', v1a, '2', false],
  ] as const)('%s', (_name, inForce, accepted, expected) => {
    expect(needsReacceptance(inForce, accepted, history)).toBe(expected);
  });

  it('works when the version in force is not in the history', () => {
    const v3 = v('3', true, 10);
    expect(needsReacceptance(v3, '2.1', history)).toBe(true);
    expect(needsReacceptance({ ...v3, material: false }, '2.1', history)).toBe(false);
  });

  it('throws CAMVEIL_E_POLICY_VERSION for malformed or contradictory entries', () => {
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (e) {
        return e instanceof CamveilError ? e.code : 'other';
      }
      return undefined;
    };
    expect(code(() => needsReacceptance({ ...v2, publishedAt: 'soon' }, '1', history))).toBe('CAMVEIL_E_POLICY_VERSION');
    expect(code(() => needsReacceptance({ ...v2, version: 'bad version' }, '1', history))).toBe('CAMVEIL_E_POLICY_VERSION');
    expect(code(() => needsReacceptance({ ...v2, material: false }, '1', history))).toBe('CAMVEIL_E_POLICY_VERSION');
  });
});
