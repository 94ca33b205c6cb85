import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfigText, validateConfig } from '../../src/config/load.js';
import { passwordOverrideEnv, resolveCameraPassword } from '../../src/config/secrets.js';
import { ConfigError } from '../../src/errors.js';

const base = { hub: { id: 'home', region: 'DE' } };

function issuesOf(raw: unknown): string[] {
  try {
    validateConfig(raw, 'test.yaml', '/etc/camveil');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).issues];
  }
  throw new Error('expected the config to be rejected');
}

const camera = (extra: Record<string, unknown> = {}) => ({ id: 'front', source: 'rtsp://10.0.0.2:88/videoMain', ...extra });

describe('config validation', () => {
  it('accepts a minimal file and fills the documented defaults', () => {
    const c = validateConfig({ ...base, cameras: [camera()] }, 'x', '/etc/camveil');
    expect(c.dataDir).toBe('/var/lib/camveil');
    expect(c.recording).toEqual({ preRollSeconds: 5, postRollSeconds: 10, maxClipSeconds: 120, memoryCeilingMiB: 64 });
    expect(c.cameras[0]?.analysis).toEqual({ fps: 2, width: 640, height: 360 });
    expect(c.cameras[0]?.motion).toEqual({ enabled: true, sensitivity: 0.5, minArea: 0.005, zones: [] });
  });

  it('resolves relative data dirs, password files and file: sources against the config file', () => {
    const c = validateConfig(
      { ...base, dataDir: 'data', cameras: [camera({ source: 'file:clips/a.mp4', credentials: { username: 'u', passwordFile: 'pw' } })] },
      'x',
      '/etc/camveil',
    );
    expect(c.dataDir).toBe('/etc/camveil/data');
    expect(c.cameras[0]?.source).toBe('file:/etc/camveil/clips/a.mp4');
    expect(c.cameras[0]?.credentials?.passwordFile).toBe('/etc/camveil/pw');
  });

  const rules: Array<[string, unknown, RegExp]> = [
    ['missing hub', {}, /^hub: /],
    ['bad region', { hub: { id: 'home', region: 'Germany' } }, /^hub\.region: must be an ISO 3166/],
    ['bad hub id', { hub: { id: 'Home Hub', region: 'DE' } }, /^hub\.id: must be 1-63 characters/],
    ['unknown top-level key', { ...base, clould: {} }, /^\(top level\): unknown key\(s\) "clould"/],
    ['unknown camera key', { ...base, cameras: [camera({ colour: 'red' })] }, /^cameras\[0\]: unknown key\(s\) "colour"/],
    ['unsupported scheme', { ...base, cameras: [camera({ source: 'ftp://x/y' })] }, /^cameras\[0\]\.source: scheme ftp: is not supported/],
    ['not a URL', { ...base, cameras: [camera({ source: 'front door' })] }, /^cameras\[0\]\.source: must be a URL/],
    ['password in URL', { ...base, cameras: [camera({ source: 'rtsp://admin:pw@10.0.0.2/x' })] }, /source: the URL holds a password; .*passwordFile/],
    ['user in URL', { ...base, cameras: [camera({ source: 'rtsp://admin@10.0.0.2/x' })] }, /source: the URL holds a user name/],
    ['Foscam pwd= query', { ...base, cameras: [camera({ source: 'http://10.0.0.2:88/cgi-bin/CGIStream.cgi?usr=a&pwd=b' })] }, /the URL query holds a password/],
    ['plain password', { ...base, cameras: [camera({ credentials: { username: 'admin', password: 'x' } })] }, /credentials\.password: plain passwords are not allowed.*passwordFile.*passwordEnv/],
    ['both password sources', { ...base, cameras: [camera({ credentials: { username: 'a', passwordFile: 'f', passwordEnv: 'P' } })] }, /passwordFile: set passwordFile or passwordEnv, not both/],
    ['bad env name', { ...base, cameras: [camera({ credentials: { username: 'a', passwordEnv: 'my pass' } })] }, /passwordEnv: must be an environment variable name/],
    ['duplicate camera id', { ...base, cameras: [camera(), camera()] }, /^cameras\[1\]\.id: duplicate camera id "front"/],
    ['fps out of range', { ...base, cameras: [camera({ analysis: { fps: 60 } })] }, /^cameras\[0\]\.analysis\.fps: /],
    ['odd analysis width', { ...base, cameras: [camera({ analysis: { width: 641 } })] }, /^cameras\[0\]\.analysis\.width: /],
    ['sensitivity out of range', { ...base, cameras: [camera({ motion: { sensitivity: 2 } })] }, /^cameras\[0\]\.motion\.sensitivity: /],
    ['degenerate zone', { ...base, cameras: [camera({ motion: { zones: [[[0, 0], [1, 1]]] } })] }, /^cameras\[0\]\.motion\.zones\[0\]: a polygon needs at least 3 points/],
    ['mask outside the frame', { ...base, cameras: [camera({ privacyMasks: [[[0, 0], [1.5, 0], [1, 1]]] })] }, /^cameras\[0\]\.privacyMasks\[0\]\[1\]\[0\]: /],
    ['clip shorter than pre-roll', { ...base, recording: { preRollSeconds: 10, maxClipSeconds: 5 } }, /^recording\.maxClipSeconds: /],
    ['bad log level', { ...base, log: { level: 'loud' } }, /^log\.level: /],
  ];

  for (const [rule, raw, expected] of rules) {
    it(`rejects: ${rule}`, () => {
      const issues = issuesOf(raw);
      expect(issues.some((i) => expected.test(i)), issues.join('\n')).toBe(true);
    });
  }

  it('lists every problem at once, each as path: reason', () => {
    const issues = issuesOf({ hub: { id: 'home', region: 'xx' }, cameras: [camera({ colour: 1, motion: { sensitivity: -1 } })], extra: 1 });
    expect(issues.length).toBeGreaterThanOrEqual(4);
    for (const i of issues) expect(i).toMatch(/^[^:]+: .+/);
  });

  it('refuses a removed key by name, saying it was removed, and still reports unknown keys beside it', () => {
    const raw = { ...base, homeAssistant: { faceIdentities: false, colour: 'red' } };
    expect(() => validateConfig(raw, 'old.yaml', '/')).toThrow(expect.objectContaining({ code: 'CAMVEIL_E_CONFIG_INVALID' }) as Error);
    const issues = issuesOf(raw);
    expect(issues).toContainEqual(expect.stringMatching(/^homeAssistant\.faceIdentities: removed: it never did anything.*delete the line$/));
    expect(issues).toContainEqual('homeAssistant: unknown key(s) "colour"');
    expect(issues.join('\n')).not.toContain('"faceIdentities"');
  });

  it('reports YAML syntax errors with their line', () => {
    expect(() => parseConfigText('hub:\n  id: home\n  id: again\n', 'bad.yaml')).toThrow(/line 3/);
  });

  it('reports an unreadable file with its path and the config-unreadable code', () => {
    expect(() => loadConfigFile('/nonexistent/camveil.yaml')).toThrow(
      expect.objectContaining({ code: 'CAMVEIL_E_CONFIG_UNREADABLE' }) as Error,
    );
  });
});

describe('camera passwords', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-secrets-'));
  const file = path.join(dir, 'front.pass');
  writeFileSync(file, 's3cret-from-file\nignored\n', { mode: 0o600 });
  const cfg = validateConfig({ ...base, cameras: [camera({ credentials: { username: 'admin', passwordFile: file } })] }, 'x', dir);
  const cam = cfg.cameras[0]!;

  it('reads the first line of the password file', () => {
    expect(resolveCameraPassword(cam, {})).toBe('s3cret-from-file');
  });

  it('lets CAMVEIL_CAMERA_<ID>_PASSWORD override the file', () => {
    expect(passwordOverrideEnv('front-door')).toBe('CAMVEIL_CAMERA_FRONT_DOOR_PASSWORD');
    expect(resolveCameraPassword(cam, { CAMVEIL_CAMERA_FRONT_PASSWORD: 'from-env' })).toBe('from-env');
  });

  it('names a missing env variable or file without revealing any secret', () => {
    const envCam = validateConfig({ ...base, cameras: [camera({ credentials: { username: 'a', passwordEnv: 'FRONT_PW' } })] }, 'x', dir).cameras[0]!;
    expect(() => resolveCameraPassword(envCam, {})).toThrow(/FRONT_PW is not set/);
    const missing = validateConfig({ ...base, cameras: [camera({ credentials: { username: 'a', passwordFile: 'nope' } })] }, 'x', dir).cameras[0]!;
    expect(() => resolveCameraPassword(missing, {})).toThrow(expect.objectContaining({ code: 'CAMVEIL_E_SECRET_UNREADABLE' }) as Error);
  });

  it('never keeps a password in the validated config', () => {
    expect(JSON.stringify(cfg)).not.toContain('s3cret');
  });
});

describe('uplink endpoints', () => {
  const uplinkConfig = (endpoints: string) =>
    validateConfig(
      parseConfigText(
        `hub: { id: home, region: US-CA }\nhousehold: { recipients: [age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj] }\nuplink:\n  enabled: true\n  tokenFile: cloud.token\n  endpoints:\n${endpoints}`,
        'camveil.yaml',
      ),
      'camveil.yaml',
      '/etc/camveil',
    ).uplink;

  it('reads `type: http` endpoints, and the older bare URL (or an object without type) as the same http endpoint', () => {
    const typed = uplinkConfig('    us: { type: http, url: "https://us.cloud.example/base" }\n');
    const legacy = uplinkConfig('    us: https://us.cloud.example/base\n');
    const untyped = uplinkConfig('    us: { url: "https://us.cloud.example/base" }\n');
    expect(typed.endpoints).toEqual({ us: { type: 'http', url: 'https://us.cloud.example/base' } });
    expect(legacy).toEqual(typed);
    expect(untyped).toEqual(typed);
    expect(typed.tokenFile).toBe('/etc/camveil/cloud.token');
  });

  it('refuses an unknown type, unknown keys and plain http beyond loopback, each at its path', () => {
    const raw = (us: unknown) => ({ hub: { id: 'home', region: 'US-CA' }, household: { recipients: ['age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj'] }, uplink: { enabled: true, tokenFile: 't', endpoints: { us } } });
    expect(issuesOf(raw({ type: 'ftp', url: 'https://x.example' }))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.type: type must be http \(the cloud receiver protocol\) or s3/));
    expect(issuesOf(raw({ type: 'http', url: 'https://x.example', token: 'secret' }))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us: unknown key\(s\) "token"/));
    expect(issuesOf(raw('http://cloud.example'))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.url: must be https:\/\//));
    expect(issuesOf(raw({ type: 'http', url: 'ftp://cloud.example' }))).toContainEqual(expect.stringMatching(/^uplink\.endpoints\.us\.url: must be an https:\/\/ URL/));
  });
});
