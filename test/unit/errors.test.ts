import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CamveilError, ConfigError, ERROR_CODES, exitCodeFor } from '../../src/errors.js';

describe('error catalogue', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  // The catalogue's rows: `| \`CAMVEIL_E_…\` | meaning |`.
  const documented = [...doc.matchAll(/^\| `(CAMVEIL_E_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]!);

  it('documents every error code in docs/errors.md', () => {
    const missing = Object.keys(ERROR_CODES).filter((code) => !documented.includes(code));
    expect(missing).toEqual([]);
  });

  it('documents no code that src/errors.ts does not define, and none twice', () => {
    const unknown = documented.filter((code) => !(code in ERROR_CODES));
    expect(unknown).toEqual([]);
    expect(documented.length).toBe(new Set(documented).size);
  });

  it('maps bad usage and configuration to exit code 2, everything else to 1', () => {
    expect(exitCodeFor(new ConfigError('x.yaml', ['a: b']))).toBe(2);
    expect(exitCodeFor(new CamveilError('CAMVEIL_E_USAGE', 'x'))).toBe(2);
    expect(exitCodeFor(new CamveilError('CAMVEIL_E_CAMERA_UNREACHABLE', 'x'))).toBe(1);
    expect(exitCodeFor(new Error('boom'))).toBe(1);
  });
});
