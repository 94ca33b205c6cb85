import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CamveilError, ConfigError, ERROR_CODES, exitCodeFor } from '../../src/errors.js';

describe('error catalogue', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('documents every error code in the README', () => {
    const missing = Object.keys(ERROR_CODES).filter((code) => !readme.includes(`\`${code}\``));
    expect(missing).toEqual([]);
  });

  it('maps bad usage and configuration to exit code 2, everything else to 1', () => {
    expect(exitCodeFor(new ConfigError('x.yaml', ['a: b']))).toBe(2);
    expect(exitCodeFor(new CamveilError('CAMVEIL_E_USAGE', 'x'))).toBe(2);
    expect(exitCodeFor(new CamveilError('CAMVEIL_E_CAMERA_UNREACHABLE', 'x'))).toBe(1);
    expect(exitCodeFor(new Error('boom'))).toBe(1);
  });
});
