import { CamveilError } from '../errors.js';

/** Key names that hold secrets (compared lower-cased, without `_` and `-`). */
const SECRET_KEYS = new Set(['password', 'passwd', 'pwd', 'secret', 'token', 'privatekey', 'pseudonymsecret', 'apikey', 'accesstoken']);
const SECRET_TEXT: ReadonlyArray<readonly [RegExp, string]> = [
  [/AGE-SECRET-KEY-/i, 'an age secret key'],
  [/[a-z][a-z0-9+.-]*:\/\/[^/\s@"]*:[^/\s@"]*@/i, 'a URL with credentials'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a PEM private key'],
];

/** Why `value` (to be published as JSON) looks like it holds a secret, as `path: reason`; empty when it does not. */
export function secretProblems(value: unknown): string[] {
  const problems: string[] = [];
  let json: string;
  try {
    json = JSON.stringify(value) ?? '';
  } catch {
    return ['(root): not serialisable as JSON'];
  }
  for (const [pattern, what] of SECRET_TEXT) if (pattern.test(json)) problems.push(`(json): contains ${what}`);
  const walk = (v: unknown, path: string, depth: number): void => {
    if (depth > 32 || v === null || typeof v !== 'object') return;
    for (const [key, item] of Object.entries(v)) {
      if (SECRET_KEYS.has(key.toLowerCase().replace(/[_-]/g, ''))) problems.push(`${path}.${key}: key names a secret`);
      walk(item, `${path}.${key}`, depth + 1);
    }
  };
  walk(JSON.parse(json === '' ? 'null' : json) as unknown, '$', 0);
  return problems;
}

/**
 * Refuses a state or reply that looks like it holds a secret. Paths are named, values never.
 *
 * @throws CamveilError `CAMVEIL_E_STATE_UNSAFE` listing every problem.
 */
export function assertNoSecrets(value: unknown): void {
  const problems = secretProblems(value);
  if (problems.length > 0) throw new CamveilError('CAMVEIL_E_STATE_UNSAFE', `refused to publish: ${problems.join('; ')}`, { where: 'state' });
}
