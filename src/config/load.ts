import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { CamveilError, ConfigError } from '../errors.js';
import { configSchema, type Config } from './schema.js';

/**
 * Keys that earlier versions accepted and this one does not, with what to do. The schema is strict, so an
 * old config holding one is refused; the reason says the key was removed rather than "unknown", which would
 * read as a typo.
 */
const REMOVED_KEYS: Readonly<Record<string, string>> = {
  'homeAssistant.faceIdentities':
    'removed: it never did anything (no Home Assistant entity ever names a recognised person, whatever it said); delete the line',
};

/** A zod path as `a.b[0].c`. */
function pathText(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc === '' ? String(key) : `${acc}.${String(key)}`), '');
}

/** Formats zod issues as `path: reason`, one per problem, with array indices written as [i]. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((issue) => {
    const where = pathText(issue.path);
    const at = where === '' ? '(top level)' : where;
    if (issue.code !== 'unrecognized_keys') return [`${at}: ${issue.message}`];
    const removed = issue.keys.filter((k) => Object.hasOwn(REMOVED_KEYS, pathText([...issue.path, k])));
    const unknown = issue.keys.filter((k) => !removed.includes(k));
    return [
      ...removed.map((k) => `${pathText([...issue.path, k])}: ${REMOVED_KEYS[pathText([...issue.path, k])]!}`),
      ...(unknown.length === 0 ? [] : [`${at}: unknown key(s) ${unknown.map((k) => `"${k}"`).join(', ')}`]),
    ];
  });
}

/** Parses YAML or JSON text (JSON is YAML) and reports syntax errors with line and column. */
export function parseConfigText(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `line ${e.linePos?.[0].line ?? '?'}, column ${e.linePos?.[0].col ?? '?'}: ${e.message.split('\n')[0] ?? ''}`),
    );
  }
  return doc.toJS() as unknown;
}

/** Validates an already-parsed document. `file` names the source in errors; relative paths resolve against `baseDir`. */
export function validateConfig(raw: unknown, file: string, baseDir: string): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(file, formatIssues(result.error.issues));
  const config = result.data;
  config.dataDir = path.resolve(baseDir, config.dataDir);
  for (const camera of config.cameras) {
    if (camera.credentials?.passwordFile !== undefined) {
      camera.credentials.passwordFile = path.resolve(baseDir, camera.credentials.passwordFile);
    }
    camera.source = resolveFileSource(camera.source, baseDir);
    if (camera.subSource !== undefined) camera.subSource = resolveFileSource(camera.subSource, baseDir);
  }
  if (config.uplink.tokenFile !== undefined) config.uplink.tokenFile = path.resolve(baseDir, config.uplink.tokenFile);
  for (const endpoint of Object.values(config.uplink.endpoints)) {
    if (endpoint?.type === 's3') endpoint.credentialsFile = path.resolve(baseDir, endpoint.credentialsFile);
  }
  if (config.mqtt !== undefined) {
    for (const key of ['caFile', 'certFile', 'keyFile', 'passwordFile'] as const) {
      const file = config.mqtt[key];
      if (file !== undefined) config.mqtt[key] = path.resolve(baseDir, file);
    }
  }
  return config;
}

function resolveFileSource(source: string, baseDir: string): string {
  if (!source.startsWith('file:')) return source;
  const url = new URL(source);
  // `file:clips/a.mp4` (relative) parses as a path relative to the root; take the raw text instead.
  const raw = source.slice('file:'.length).replace(/^\/\//, '');
  const resolved = path.isAbsolute(raw) ? decodeURIComponent(url.pathname) : path.resolve(baseDir, raw);
  return `file:${resolved}`;
}

/** Reads, parses and validates a config file. Throws ConfigError listing every problem at once. */
export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_CONFIG_UNREADABLE', `${file}: cannot read: ${(error as Error).message}`, { where: file, cause: error });
  }
  return validateConfig(parseConfigText(text, file), file, path.dirname(path.resolve(file)));
}
