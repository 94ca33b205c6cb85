import { Decrypter, identityToRecipient } from 'age-encryption';
import { CamveilError } from '../errors.js';
import type { RecipientKind } from './recipients.js';

/**
 * Identities are secret: nothing in this file puts one, or typage's error about one, into a message or
 * an error cause (typage's bech32 errors quote the string they failed on).
 */

/** The kind of an identity string, by prefix; null when it is not an age native identity. */
export function identityKind(identity: string): RecipientKind | null {
  if (identity.startsWith('AGE-SECRET-KEY-PQ-1')) return 'mlkem768x25519';
  if (identity.startsWith('AGE-SECRET-KEY-1')) return 'x25519';
  return null;
}

/**
 * Checks identities and returns a typage Decrypter holding them.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID` naming `where` and the position, never the identity.
 */
export function decrypterFor(identities: string | readonly string[], where = 'identity'): Decrypter {
  const list = typeof identities === 'string' ? [identities] : identities;
  if (list.length === 0) throw new CamveilError('CAMVEIL_E_KEY_INVALID', `${where}: no identity given`, { where });
  const decrypter = new Decrypter();
  list.forEach((identity, i) => {
    const at = list.length === 1 ? where : `${where}[${i}]`;
    if (identityKind(identity) === null) {
      throw new CamveilError('CAMVEIL_E_KEY_INVALID', `${at}: not an age identity (expected AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)`, { where: at });
    }
    try {
      decrypter.addIdentity(identity);
    } catch {
      throw new CamveilError('CAMVEIL_E_KEY_INVALID', `${at}: malformed age identity (bad checksum or length)`, { where: at });
    }
  });
  return decrypter;
}

/**
 * The recipient (public key) of an identity.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID` without quoting the identity.
 */
export async function recipientOf(identity: string, where = 'identity'): Promise<string> {
  if (identityKind(identity) === null) {
    throw new CamveilError('CAMVEIL_E_KEY_INVALID', `${where}: not an age identity`, { where });
  }
  try {
    return await identityToRecipient(identity);
  } catch {
    throw new CamveilError('CAMVEIL_E_KEY_INVALID', `${where}: malformed age identity (bad checksum or length)`, { where });
  }
}

/**
 * Parses an identity file as written by `age-keygen` or `camveil keygen`: one identity a line, `#`
 * comments and blank lines ignored. Every identity is checked.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID` naming `where` and the line number, never the line.
 */
export async function parseIdentityFile(text: string, where: string): Promise<string[]> {
  const identities: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    identities.push(line);
    await recipientOf(line, `${where}:${i + 1}`);
  }
  if (identities.length === 0) throw new CamveilError('CAMVEIL_E_KEY_INVALID', `${where}: holds no identity`, { where });
  return identities;
}

/**
 * An identity file in `age-keygen`'s layout, readable by `age -d -i`:
 * `# created: <RFC 3339 time>`, `# public key: <recipient>`, then the identity.
 */
export function identityFileText(identity: string, recipient: string, created: Date): string {
  const time = created.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return `# created: ${time}\n# public key: ${recipient}\n${identity}\n`;
}
