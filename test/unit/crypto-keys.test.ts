import { createHmac } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runKeygen } from '../../src/commands/keygen.js';
import { decryptToBuffer, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { base32 } from '../../src/crypto/base32.js';
import { HUB_IDENTITY_FILE, loadOrCreateHubKeys, PSEUDONYM_SECRET_FILE } from '../../src/crypto/hub-keys.js';
import { parseIdentityFile } from '../../src/crypto/identities.js';
import { pseudonym } from '../../src/crypto/pseudonym.js';
import { parseRecipients, recipientsSchema } from '../../src/crypto/recipients.js';
import { CamveilError } from '../../src/errors.js';

let xRecipient: string;
let pqRecipient: string;

beforeAll(async () => {
  xRecipient = await identityToRecipient(await generateX25519Identity());
  pqRecipient = await identityToRecipient(await generateHybridIdentity());
});

function thrown(fn: () => unknown): CamveilError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CamveilError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

async function rejected(promise: Promise<unknown>): Promise<CamveilError> {
  const e: unknown = await promise.then(
    () => new Error('did not reject'),
    (error: unknown) => error,
  );
  if (e instanceof CamveilError) return e;
  throw e;
}

describe('household recipients', () => {
  it('accepts X25519 and post-quantum hybrid recipients', () => {
    expect(parseRecipients([xRecipient, pqRecipient])).toEqual([xRecipient, pqRecipient]);
    expect(recipientsSchema.safeParse([pqRecipient]).success).toBe(true);
  });

  it('names every bad recipient at once', () => {
    const badChecksum = `${xRecipient.slice(0, -1)}${xRecipient.endsWith('q') ? 'p' : 'q'}`;
    const e = thrown(() => parseRecipients([xRecipient, badChecksum, 'ssh-ed25519 AAAA', xRecipient, 'age1tag1qqqq']));
    expect(e.code).toBe('CAMVEIL_E_KEY_INVALID');
    expect(e.message).toContain(`recipients[1] (${badChecksum.slice(0, 14)}`);
    expect(e.message).toContain('recipients[2] (ssh-ed25519 AAAA): is not an age recipient');
    expect(e.message).toContain('recipients[3]');
    expect(e.message).toContain('listed twice');
    expect(e.message).toContain('recipients[4] (age1tag1qqqq): tag recipients are not supported');
  });

  it('requires at least one recipient, in code and in the zod schema', () => {
    expect(thrown(() => parseRecipients([])).message).toMatch(/at least one/);
    const result = recipientsSchema.safeParse([]);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(/at least one/);
  });

  it('reports zod issues with the failing index', () => {
    const result = recipientsSchema.safeParse([xRecipient, 'age1nope', xRecipient]);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join('.'))).toEqual(['1', '2']);
  });
});

describe('pseudonyms', () => {
  const secret = Buffer.alloc(32, 7);

  it('is HMAC-SHA256(secret, kind NUL value), 10 bytes in base32, with the kind as prefix', () => {
    const expected = base32(createHmac('sha256', secret).update('cam\x00192.168.1.20').digest().subarray(0, 10));
    expect(pseudonym(secret, 'cam', '192.168.1.20')).toBe(`cam_${expected}`);
    expect(pseudonym(secret, 'cam', '192.168.1.20')).toMatch(/^cam_[a-z2-7]{16}$/);
  });

  it('is stable, separates kinds and depends on the secret', () => {
    const a = pseudonym(secret, 'cam', 'serial-1');
    expect(pseudonym(secret, 'cam', 'serial-1')).toBe(a);
    expect(pseudonym(secret, 'dev', 'serial-1').slice(4)).not.toBe(a.slice(4));
    expect(pseudonym(Buffer.alloc(32, 8), 'cam', 'serial-1')).not.toBe(a);
    expect(pseudonym(secret, 'cam', 'serial-2')).not.toBe(a);
  });

  it('refuses short secrets and kinds that could break domain separation', () => {
    expect(() => pseudonym(Buffer.alloc(16), 'cam', 'x')).toThrow(RangeError);
    expect(() => pseudonym(secret, 'ca\0m', 'x')).toThrow(RangeError);
    expect(() => pseudonym(secret, 'Cam', 'x')).toThrow(RangeError);
  });

  it('encodes base32 as RFC 4648 (lower case, no padding)', () => {
    const vectors: Array<[string, string]> = [['', ''], ['f', 'my'], ['fo', 'mzxq'], ['foo', 'mzxw6'], ['foob', 'mzxw6yq'], ['fooba', 'mzxw6ytb'], ['foobar', 'mzxw6ytboi']];
    for (const [input, output] of vectors) expect(base32(Buffer.from(input))).toBe(output);
  });
});

describe('hub keys', () => {
  const dirs: string[] = [];
  const fresh = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'camveil-keys-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  it('creates private key files on first start and returns the same keys afterwards', async () => {
    const dataDir = await fresh();
    const keys = await loadOrCreateHubKeys(dataDir);
    expect(keys.identity).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]+$/);
    expect(keys.recipient).toBe(await identityToRecipient(keys.identity));
    expect(keys.pseudonymSecret.length).toBe(32);
    expect((await stat(join(dataDir, 'keys'))).mode & 0o777).toBe(0o700);
    for (const file of [HUB_IDENTITY_FILE, PSEUDONYM_SECRET_FILE]) {
      expect((await stat(join(dataDir, 'keys', file))).mode & 0o777).toBe(0o600);
    }
    const again = await loadOrCreateHubKeys(dataDir);
    expect(again.identity).toBe(keys.identity);
    expect(again.pseudonymSecret.equals(keys.pseudonymSecret)).toBe(true);
    const file = await encryptToBuffer([keys.recipient], Buffer.from('enrolment photo'));
    expect((await decryptToBuffer(again.identity, file)).toString()).toBe('enrolment photo');
  });

  it('gives one set of keys to concurrent first starts', async () => {
    const dataDir = await fresh();
    const all = await Promise.all([1, 2, 3].map(() => loadOrCreateHubKeys(dataDir)));
    expect(new Set(all.map((k) => k.identity)).size).toBe(1);
    expect(new Set(all.map((k) => k.pseudonymSecret.toString('hex'))).size).toBe(1);
  });

  it('refuses a key file readable by group or others, naming the file', async () => {
    const dataDir = await fresh();
    await loadOrCreateHubKeys(dataDir);
    const path = join(dataDir, 'keys', HUB_IDENTITY_FILE);
    await chmod(path, 0o640);
    const e = await rejected(loadOrCreateHubKeys(dataDir));
    expect(e.code).toBe('CAMVEIL_E_KEY_UNREADABLE');
    expect(e.message).toContain(path);
    expect(e.message).toContain('640');
  });

  it('refuses a corrupt identity or secret without printing its content', async () => {
    const dataDir = await fresh();
    const keys = await loadOrCreateHubKeys(dataDir);
    const path = join(dataDir, 'keys', HUB_IDENTITY_FILE);
    const original = await readFile(path, 'utf8');
    const corrupt = `${keys.identity.slice(0, -3)}${keys.identity.endsWith('AAA') ? 'QQQ' : 'AAA'}\n`;
    await writeFile(path, corrupt, { mode: 0o600 });
    const e = await rejected(loadOrCreateHubKeys(dataDir));
    expect(e.code).toBe('CAMVEIL_E_KEY_UNREADABLE');
    expect(e.message).toContain(path);
    expect(e.message).not.toContain(corrupt.slice(16, 50));
    expect(JSON.stringify(e, Object.getOwnPropertyNames(e))).not.toContain(corrupt.slice(16, 50));

    const secretPath = join(dataDir, 'keys', PSEUDONYM_SECRET_FILE);
    await writeFile(secretPath, 'zz-not-hex\n', { mode: 0o600 });
    await writeFile(path, original, { mode: 0o600 });
    const e2 = await rejected(loadOrCreateHubKeys(dataDir));
    expect(e2.message).toContain(secretPath);
    expect(e2.message).not.toContain('zz-not-hex');
  });

  it('refuses a key file replaced by a symbolic link', async () => {
    const dataDir = await fresh();
    await loadOrCreateHubKeys(dataDir);
    const path = join(dataDir, 'keys', PSEUDONYM_SECRET_FILE);
    const elsewhere = join(dataDir, 'elsewhere');
    await writeFile(elsewhere, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    await unlink(path);
    await symlink(elsewhere, path);
    const e = await rejected(loadOrCreateHubKeys(dataDir));
    expect(e.message).toMatch(/symbolic link/);
  });
});

describe('camveil keygen', () => {
  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) } };
  };
  const now = () => new Date('2026-11-23T13:00:00.123Z');

  it('prints an X25519 identity like age-keygen that parses back and decrypts', async () => {
    const { out, err, io } = capture();
    expect(await runKeygen({}, io, now)).toBe(0);
    expect(out).toHaveLength(3);
    expect(out[0]).toBe('# created: 2026-11-23T13:00:00Z');
    const recipient = /^# public key: (age1[0-9a-z]+)$/.exec(out[1]!)?.[1];
    expect(recipient).toBeDefined();
    expect(err).toEqual([`Public key: ${recipient}`]);
    const [identity] = await parseIdentityFile(out.join('\n'), 'stdout');
    expect(identity).toMatch(/^AGE-SECRET-KEY-1/);
    const file = await encryptToBuffer([recipient!], Buffer.from('hi'));
    expect((await decryptToBuffer(identity!, file)).toString()).toBe('hi');
  });

  it('prints a post-quantum hybrid identity with --pq', async () => {
    const { out, err, io } = capture();
    await runKeygen({ pq: true }, io, now);
    const [identity] = await parseIdentityFile(out.join('\n'), 'stdout');
    expect(identity).toMatch(/^AGE-SECRET-KEY-PQ-1/);
    const recipient = err[0]!.replace('Public key: ', '');
    expect(recipient).toMatch(/^age1pq1/);
    expect(out[1]).toBe(`# public key: ${recipient}`);
    const file = await encryptToBuffer([recipient], Buffer.from('pq'));
    expect((await decryptToBuffer(identity!, file)).toString()).toBe('pq');
  });

  it('makes a different identity every time', async () => {
    const a = capture();
    const b = capture();
    await runKeygen({}, a.io);
    await runKeygen({}, b.io);
    expect(a.out[2]).not.toBe(b.out[2]);
  });
});
