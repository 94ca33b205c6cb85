import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { schemaKeys } from '../harness/schema-keys.js';

// A record's key is written as a name in angle brackets (`uplink.endpoints.<zone>.url`); any name matches.
const normalise = (path: string): string => path.replace(/<[^>]+>/g, '<key>');

describe('docs/configuration.md', () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  // The reference table's rows: `| \`key.path\` | type | default | meaning |`.
  const documented = [...doc.matchAll(/^\| `([a-zA-Z][^`]*)` \|/gm)].map((m) => normalise(m[1]!));
  const inSchema = schemaKeys(configSchema).map((k) => normalise(k.path));

  it('finds the keys of the schema (the walk itself works)', () => {
    expect(inSchema).toContain('hub.id');
    expect(inSchema).toContain('cameras[].credentials.passwordFile');
    expect(inSchema).toContain('privacy.policyHistory[].material');
    expect(inSchema.some((k) => k.startsWith('uplink.endpoints.<key>.'))).toBe(true);
    // refused-only keys (a plain password) are no settings
    expect(inSchema).not.toContain('cameras[].credentials.password');
  });

  it('documents every key of the config schema', () => {
    expect(inSchema.filter((k) => !documented.includes(k))).toEqual([]);
  });

  it('documents no key the schema does not have, and each once', () => {
    expect(documented.filter((k) => !inSchema.includes(k))).toEqual([]);
    expect(documented.length).toBe(new Set(documented).size);
  });
});
