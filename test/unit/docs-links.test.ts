import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configSchema } from '../../src/config/schema.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const read = (page: string): string => readFileSync(join(root, page), 'utf8');
// Links are looked for outside fenced code blocks and code spans only.
const prose = (text: string): string => text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  for (const m of text.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} (.+)$/gm)) {
    anchors.add(m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return anchors;
}

describe('documentation', () => {
  it('has the front door and the reference pages', () => {
    for (const page of ['docs/architecture.md', 'docs/configuration.md', 'docs/cli.md', 'docs/mqtt-api.md', 'docs/faces.md',
      'docs/storage-and-uploads.md', 'docs/privacy.md', 'docs/errors.md', 'docs/benchmarks.md']) {
      expect(pages).toContain(page);
    }
  });

  it.each(pages)('%s: every relative link reaches a file, and its anchor a heading', (page) => {
    const broken: string[] = [];
    for (const m of prose(read(page)).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target)) continue; // absolute URLs are not this test's business
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? join(root, page) : join(root, dirname(page), path);
      if (!existsSync(file)) {
        broken.push(target);
        continue;
      }
      if (relative(root, file).startsWith('..')) broken.push(`${target} (outside the repository)`);
      if (anchor !== undefined && statSync(file).isFile() && file.endsWith('.md') && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) {
        broken.push(target);
      }
    }
    expect(broken).toEqual([]);
  });

  it('README: the two commands as CI and people run them', () => {
    const readme = read('README.md');
    expect(readme).toMatch(/^npm ci && npm run demo\b/m);
    expect(readme).toMatch(/^npm test\b/m);
    expect(read('.ci/run')).toMatch(/^npm test$/m);
  });

  it('every `npm run` script the docs name exists', () => {
    const scripts = Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts);
    const named = new Set(pages.flatMap((page) => [...read(page).matchAll(/npm run (?:-s )?([a-z][a-z:-]*)/g)].map((m) => m[1]!)));
    expect([...named].filter((s) => !scripts.includes(s))).toEqual([]);
  });

  it("README: the minimal configuration is valid", () => {
    const yaml = /```yaml\n([\s\S]*?)```/.exec(read('README.md'))?.[1];
    expect(yaml).toBeDefined();
    const result = configSchema.safeParse(parse(yaml!));
    expect(result.error?.issues ?? []).toEqual([]);
  });

  it('points nowhere outside the repository', () => {
    for (const page of pages) expect(read(page)).not.toMatch(/\.\.\/shared|\/work\/shared/);
  });
});
