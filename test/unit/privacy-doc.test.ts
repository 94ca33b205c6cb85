import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INCIDENT_REASONS } from '../../src/events.js';

describe('docs/privacy.md', () => {
  const doc = readFileSync(new URL('../../docs/privacy.md', import.meta.url), 'utf8');

  it('maps every security incident the hub reports to the policy promise to tell users of incidents (2021 §3.4)', () => {
    const row = doc.split('\n').find((line) => line.startsWith('| Users are told promptly about security incidents'));
    expect(row).toBeDefined();
    const missing = INCIDENT_REASONS.filter((reason) => !row!.includes(`\`${reason}\``));
    expect(missing).toEqual([]);
  });
});
