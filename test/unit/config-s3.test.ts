import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText, validateConfig } from '../../src/config/load.js';
import { looseSecretFiles, secretFilesOf } from '../../src/config/secret-files.js';
import { secretProblems } from '../../src/config/secrets.js';
import { ConfigError } from '../../src/errors.js';
import { remoteStoreFor } from '../../src/uplink/remote-store-factory.js';
import { S3ObjectStore } from '../../src/uplink/s3-object-store.js';

const RECIPIENT = 'age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj';
const raw = (us: unknown, uplink: Record<string, unknown> = {}) => ({
  hub: { id: 'home', region: 'US-CA' },
  household: { recipients: [RECIPIENT] },
  uplink: { enabled: true, endpoints: { us }, ...uplink },
});
const s3 = (fields: Record<string, unknown> = {}) => ({ type: 's3', region: 'us-east-1', bucket: 'household-cams', credentialsFile: 's3.yaml', ...fields });

function issuesOf(value: unknown): string[] {
  try {
    validateConfig(value, 'test.yaml', '/etc/camveil');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).issues];
  }
  return [];
}

describe('uplink endpoints of type s3', () => {
  it('reads an s3 endpoint from YAML, resolves the credentials file against the config directory, and needs no token file', () => {
    const config = validateConfig(
      parseConfigText(
        `hub: { id: home, region: US-CA }\nhousehold: { recipients: [${RECIPIENT}] }\nuplink:\n  enabled: true\n  endpoints:\n    us:\n      type: s3\n      endpoint: https://s3.example.net\n      region: us-east-1\n      bucket: household-cams\n      prefix: camveil/home\n      forcePathStyle: true\n      credentialsFile: secrets/s3.yaml\n`,
        'camveil.yaml',
      ),
      'camveil.yaml',
      '/etc/camveil',
    );
    expect(config.uplink.endpoints.us).toEqual({
      type: 's3',
      endpoint: 'https://s3.example.net',
      region: 'us-east-1',
      bucket: 'household-cams',
      prefix: 'camveil/home',
      forcePathStyle: true,
      credentialsFile: '/etc/camveil/secrets/s3.yaml',
    });
    expect(config.uplink.tokenFile).toBeUndefined();
    // Path style is off unless asked; AWS itself when no endpoint is given.
    const aws = validateConfig(raw(s3()), 'x', '/etc/camveil').uplink.endpoints.us;
    expect(aws).toEqual({ type: 's3', region: 'us-east-1', bucket: 'household-cams', forcePathStyle: false, credentialsFile: '/etc/camveil/s3.yaml' });
  });

  it('still wants the token file when an endpoint is http', () => {
    expect(issuesOf(raw('https://us.cloud.example'))).toContainEqual(expect.stringMatching(/^uplink\.tokenFile: required when uploads are enabled with an http endpoint/));
    expect(issuesOf(raw(s3()))).toEqual([]);
  });

  it('checks bucket names as S3 does', () => {
    for (const bucket of ['ab', 'Household', 'under_score', '-leading', 'trailing-', 'two..dots', '192.168.1.2', 'x'.repeat(64)]) {
      expect(issuesOf(raw(s3({ bucket }))), bucket).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.bucket: must/));
    }
    for (const bucket of ['abc', 'household-cams', 'cams.example.net', '0a9', 'x'.repeat(63)]) expect(issuesOf(raw(s3({ bucket }))), bucket).toEqual([]);
  });

  it('takes a prefix without leading or trailing slash, empty segments or dot segments', () => {
    for (const prefix of ['/lead', 'trail/', 'a//b', '', 'a/../b', './a', 'has space', 'ümlaut']) {
      expect(issuesOf(raw(s3({ prefix }))), prefix).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.prefix: must/));
    }
    for (const prefix of ['camveil', 'camveil/home-1', 'a.b/c_d/e']) expect(issuesOf(raw(s3({ prefix }))), prefix).toEqual([]);
  });

  it('refuses plain http beyond loopback, credentials or a path in the endpoint, and unknown keys (no secret in the config)', () => {
    expect(issuesOf(raw(s3({ endpoint: 'http://nas.lan:9000' })))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.endpoint: must be https:\/\//));
    expect(issuesOf(raw(s3({ endpoint: 'http://127.0.0.1:9000' })))).toEqual([]);
    expect(issuesOf(raw(s3({ endpoint: 'https://AKIA:secret@s3.example.net' })))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.endpoint: must not carry credentials/));
    expect(issuesOf(raw(s3({ endpoint: 'https://s3.example.net/bucket' })))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.endpoint: must be the service origin alone/));
    expect(issuesOf(raw(s3({ secretAccessKey: 'x' })))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us: unknown key\(s\) "secretAccessKey"/));
    expect(issuesOf(raw(s3({ credentialsFile: undefined })))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.credentialsFile:/));
    expect(issuesOf(raw(s3({ region: 'US East' })))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.region: must be a region name/));
  });

  it('lists the credentials file among the secrets: loose permissions are reported, an unreadable file is a problem named by its path in the config', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-s3-config-'));
    const file = path.join(dir, 's3.yaml');
    writeFileSync(file, 'accessKeyId: AKIAEXAMPLE\nsecretAccessKey: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n', { mode: 0o600 });
    const config = validateConfig(raw(s3({ credentialsFile: file })), 'x', dir);
    expect(secretFilesOf(config)).toContainEqual({ what: 'uplink.endpoints.us.credentialsFile', file });
    expect(looseSecretFiles(config)).toEqual([]);
    chmodSync(file, 0o644);
    expect(looseSecretFiles(config)).toEqual(['uplink.endpoints.us.credentialsFile']);
    expect(secretProblems(config, {})).toEqual([]);
    writeFileSync(file, 'accessKeyId: AKIAEXAMPLE\n');
    const problems = secretProblems(config, {});
    expect(problems).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.credentialsFile: .*secretAccessKey/));
    expect(problems.join('\n')).not.toContain('AKIAEXAMPLE');
  });

  it('the factory makes an S3ObjectStore for the zone, describing the origin and bucket, never the credentials', () => {
    const config = validateConfig(raw(s3({ endpoint: 'https://s3.example.net', prefix: 'p' })), 'x', '/etc/camveil');
    const link = remoteStoreFor(config, 'hub_aaaaaaaaaaaaaaaa');
    expect(link?.zone).toBe('us');
    expect(link?.remote).toBeInstanceOf(S3ObjectStore);
    expect(link?.remote.description).toEqual({ type: 's3', origin: 'https://s3.example.net', bucket: 'household-cams' });
    expect((link?.remote as S3ObjectStore).hubPrefix).toBe('p/hub_aaaaaaaaaaaaaaaa/');
    const aws = remoteStoreFor(validateConfig(raw(s3({ region: 'eu-central-1' })), 'x', '/etc/camveil'), 'hub_b');
    expect(aws?.remote.description).toEqual({ type: 's3', origin: 's3:eu-central-1', bucket: 'household-cams' });
  });
});
