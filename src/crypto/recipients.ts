import { Encrypter } from 'age-encryption';
import { z } from 'zod';
import { CamveilError } from '../errors.js';

/** The recipient types a household may use: the app's X25519 key or its ML-KEM-768+X25519 hybrid key. */
export type RecipientKind = 'x25519' | 'mlkem768x25519';

export type RecipientCheck = { ok: true; kind: RecipientKind } | { ok: false; reason: string };

/**
 * Classifies one recipient string. Never throws: returns the reason a string is not a recipient we accept.
 * The bech32 checksum and key length are checked by typage's own recipient parser, so anything accepted
 * here is something `Encrypter.addRecipient` accepts too.
 */
export function checkRecipient(recipient: string): RecipientCheck {
  if (recipient.trim() !== recipient) return { ok: false, reason: 'has surrounding whitespace' };
  let kind: RecipientKind;
  // Tag recipients (age1tag1…, age1tagpq1…) are for hardware tokens: a household's app does not use them.
  if (recipient.startsWith('age1tag')) return { ok: false, reason: 'tag recipients are not supported' };
  if (recipient.startsWith('age1pq1')) kind = 'mlkem768x25519';
  else if (recipient.startsWith('age1')) kind = 'x25519';
  else return { ok: false, reason: 'is not an age recipient (expected age1… or age1pq1…)' };
  try {
    new Encrypter().addRecipient(recipient);
  } catch {
    return { ok: false, reason: `is not a valid ${kind === 'x25519' ? 'X25519' : 'ML-KEM-768+X25519'} recipient (bad checksum or length)` };
  }
  return { ok: true, kind };
}

/** A recipient shortened for messages: post-quantum recipients are ~1,950 characters long. */
export function abbreviateRecipient(recipient: string): string {
  return recipient.length <= 24 ? recipient : `${recipient.slice(0, 14)}…${recipient.slice(-6)}`;
}

/** Every problem with a recipient list, as `recipients[i] (age1…): reason`; empty when the list is usable. */
export function recipientProblems(recipients: readonly string[]): string[] {
  if (recipients.length === 0) return ['at least one household recipient is required'];
  const problems: string[] = [];
  const seen = new Set<string>();
  recipients.forEach((r, i) => {
    const check = checkRecipient(r);
    if (!check.ok) problems.push(`recipients[${i}] (${abbreviateRecipient(r)}): ${check.reason}`);
    else if (seen.has(r)) problems.push(`recipients[${i}] (${abbreviateRecipient(r)}): is listed twice`);
    seen.add(r);
  });
  return problems;
}

/**
 * Validates household recipients and returns them unchanged.
 *
 * Mixing X25519 and post-quantum recipients is accepted (a household may still have an older app), but
 * such a file is only as strong as X25519 against a quantum adversary; the Go age CLI refuses that mix.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_INVALID` listing every bad recipient at once (recipients are public
 * keys, so naming them is safe).
 */
export function parseRecipients(recipients: readonly string[], where = 'recipients'): string[] {
  const problems = recipientProblems(recipients);
  if (problems.length > 0) {
    throw new CamveilError('CAMVEIL_E_KEY_INVALID', `${where}: ${problems.join('; ')}`, { where });
  }
  return [...recipients];
}

/** zod schema of one recipient, for configuration and MQTT payloads. */
export const recipientSchema = z.string().superRefine((value, ctx) => {
  const check = checkRecipient(value);
  if (!check.ok) ctx.addIssue({ code: 'custom', message: `${abbreviateRecipient(value)} ${check.reason}` });
});

/** zod schema of a household's recipient list: at least one, no duplicates. */
export const recipientsSchema = z
  .array(recipientSchema)
  .min(1, 'at least one household recipient is required')
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((r, i) => {
      if (seen.has(r)) ctx.addIssue({ code: 'custom', path: [i], message: `${abbreviateRecipient(r)} is listed twice` });
      seen.add(r);
    });
  });
