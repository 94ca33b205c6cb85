import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, lstat, mkdir, open, chmod, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { generateX25519Identity } from 'age-encryption';
import { CamveilError } from '../errors.js';
import { identityFileText, parseIdentityFile, recipientOf } from './identities.js';
import { MIN_PSEUDONYM_SECRET_SIZE } from './pseudonym.js';

/** The hub's own keys. Never log them: they are returned to the composition root only. */
export interface HubKeys {
  /** The hub's age identity, `AGE-SECRET-KEY-1…`: decrypts what the app seals for the hub. */
  identity: string;
  /** Its recipient, `age1…`, which the app encrypts to. */
  recipient: string;
  /** Key of the HMAC pseudonyms (see pseudonym.ts), 32 bytes. */
  pseudonymSecret: Buffer;
  /**
   * The hub's Ed25519 signing key: every message the hub publishes to the app (replies, events, state) is
   * signed with it, and the app pins its public key at pairing (MQTT API version 2).
   */
  signingKey: KeyObject;
  /** Its raw 32-byte public key, base64. */
  signingPublicKey: string;
}

export const HUB_IDENTITY_FILE = 'hub-identity.txt';
export const PSEUDONYM_SECRET_FILE = 'pseudonym-secret.txt';
export const HUB_SIGNING_KEY_FILE = 'hub-signing-key.pem';

/**
 * Loads the hub keys from `<dataDir>/keys/`, creating them at first start: directory 0700, files 0600,
 * each written to a temporary name, fsynced, then linked into place. `link` fails when the name exists,
 * so two processes starting at once cannot replace each other's key (a rename would). Whatever happened,
 * the keys are then read back through the same checks as at every start.
 *
 * The identity is X25519 so the hub's files stay readable by age CLIs without post-quantum support.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_UNREADABLE` naming the file (never its content) when a key file is
 * unreadable, not a regular file, malformed, not owned by this user or has group/other permission bits.
 */
export async function loadOrCreateHubKeys(dataDir: string, now: () => Date = () => new Date()): Promise<HubKeys> {
  const dir = join(dataDir, 'keys');
  await ensurePrivateDir(dir);
  const identityPath = join(dir, HUB_IDENTITY_FILE);
  const secretPath = join(dir, PSEUDONYM_SECRET_FILE);
  const signingPath = join(dir, HUB_SIGNING_KEY_FILE);

  await createIfMissing(identityPath, async () => {
    const identity = await generateX25519Identity();
    return identityFileText(identity, await recipientOf(identity), now());
  });
  await createIfMissing(secretPath, () => Promise.resolve(`${randomBytes(MIN_PSEUDONYM_SECRET_SIZE).toString('hex')}\n`));
  await createIfMissing(signingPath, () =>
    Promise.resolve(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()),
  );

  const identity = await readIdentity(identityPath);
  const signingKey = await readSigningKey(signingPath);
  return {
    identity,
    recipient: await recipientOf(identity, identityPath),
    pseudonymSecret: await readSecret(secretPath),
    signingKey,
    signingPublicKey: rawPublicKeyOf(signingKey),
  };
}

async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by the umask; set it exactly on a directory we created.
    if (created !== undefined) await chmod(dir, 0o700);
    const stat = await lstat(dir);
    if (!stat.isDirectory()) throw unreadable(dir, 'is not a directory');
  } catch (error) {
    if (error instanceof CamveilError) throw error;
    throw unreadable(dir, `cannot be created (${codeOf(error)})`, error);
  }
}

async function createIfMissing(path: string, content: () => Promise<string>): Promise<void> {
  if (await exists(path)) return;
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(await content(), 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, path);
    } catch (error) {
      // Another process created it first: keep theirs, it is read back below.
      if (codeOf(error) !== 'EEXIST') throw error;
    }
    await syncDir(join(path, '..'));
  } catch (error) {
    throw unreadable(path, `cannot be created (${codeOf(error)})`, error);
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** Reads a key file through a no-follow descriptor, checking ownership and mode on that descriptor. */
async function readPrivateFile(path: string): Promise<string> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (error) {
    throw unreadable(path, codeOf(error) === 'ELOOP' ? 'is a symbolic link' : `cannot be opened (${codeOf(error)})`, error);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw unreadable(path, 'is not a regular file');
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
      throw unreadable(path, 'is not owned by the user running camveil');
    }
    if ((stat.mode & 0o077) !== 0) {
      throw unreadable(path, `has group/other permission bits (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`);
    }
    return await handle.readFile('utf8');
  } catch (error) {
    if (error instanceof CamveilError) throw error;
    throw unreadable(path, `cannot be read (${codeOf(error)})`, error);
  } finally {
    await handle.close();
  }
}

async function readIdentity(path: string): Promise<string> {
  const text = await readPrivateFile(path);
  let identities: string[];
  try {
    identities = await parseIdentityFile(text, path);
  } catch {
    // parseIdentityFile's errors name only the file and a line number; say the same without a cause.
    throw unreadable(path, 'is malformed: expected one age identity (AGE-SECRET-KEY-1…)');
  }
  if (identities.length !== 1) throw unreadable(path, `is malformed: holds ${identities.length} identities, expected 1`);
  return identities[0]!;
}

async function readSecret(path: string): Promise<Buffer> {
  const text = await readPrivateFile(path);
  const hex = text.trim();
  if (!new RegExp(`^[0-9a-f]{${2 * MIN_PSEUDONYM_SECRET_SIZE},}$`).test(hex) || hex.length % 2 !== 0) {
    throw unreadable(path, `is malformed: expected at least ${MIN_PSEUDONYM_SECRET_SIZE} bytes in lower-case hex`);
  }
  return Buffer.from(hex, 'hex');
}

/** The raw 32-byte Ed25519 public key of a private key, base64 (what the app pins). */
export function rawPublicKeyOf(privateKey: KeyObject): string {
  return Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x ?? '', 'base64url').toString('base64');
}

/** Reads the hub's Ed25519 signing key from `path` through the same checks as at start (audit verify/export use it). */
export async function readSigningKey(path: string): Promise<KeyObject> {
  const text = await readPrivateFile(path);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    throw unreadable(path, 'is malformed: expected an Ed25519 private key (PEM, PKCS#8)');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw unreadable(path, 'is malformed: expected an Ed25519 private key (PEM, PKCS#8)');
  return key;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return false;
    throw unreadable(path, `cannot be checked (${codeOf(error)})`, error);
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function codeOf(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'error';
}

function unreadable(path: string, reason: string, cause?: unknown): CamveilError {
  // fs errors carry paths and codes, never file content, so they are safe as causes.
  return new CamveilError('CAMVEIL_E_KEY_UNREADABLE', `key file ${path} ${reason}`, { where: path, cause });
}
