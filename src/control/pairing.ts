import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, randomInt, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Database } from 'better-sqlite3';
import { canonicalJson } from '../audit/canonical.js';
import { CamveilError } from '../errors.js';
import { decodeBase64 } from './key-registry.js';

/**
 * Pairing: `camveil pair` shows a one-time code on the hub; the app proves it knows the code without
 * sending it through the broker, and the hub proves the same in its answer, binding its own keys.
 *
 * Proofs (MQTT API version 2), both keyed from the code:
 *
 * ```
 * key      = scrypt(code, salt = "camveil-pair-v2", N = 2^15, r = 8, p = 1, 32 bytes)
 * appProof = base64(HMAC-SHA256(key, "camveil-pair-v2\n"     + canonicalJson({hubId, publicKey, recipient, sealedLabel?})))
 * hubProof = base64(HMAC-SHA256(key, "camveil-pair-v2-hub\n" + canonicalJson({hubId, baseTopic, signingKey, recipient, appKey})))
 * sealedLabel = base64(nonce(12) ‖ AES-256-GCM(HKDF-SHA256(key, info = "camveil-pair-v2-label", 32 bytes), nonce, label) ‖ tag(16))
 * ```
 *
 * `code` is the 8 upper-case characters without separators; `canonicalJson` is audit/canonical.ts (keys
 * sorted, no whitespace; `sealedLabel` is left out when absent). `pair` is the one request whose args travel
 * outside the hub's age seal (the app does not know the hub's recipient yet): its key and recipient are public
 * anyway, but the label is a name a person chose ("Anna's phone"), so it is sealed under the code's key, which
 * the broker cannot find offline for the same reason it cannot forge the proof. The app's proof binds the code to its key, its
 * recipient and the hub it pairs with, so the broker cannot swap in its own key. The hub's proof binds the code
 * to the hub's Ed25519 signing key and age recipient and to the app key it answers, so the broker cannot swap in
 * its own keys either: the app pins them only when the proof checks, and from then on seals only to that
 * recipient and believes only what that key signed. scrypt rather than the code as HMAC key: the broker
 * sees the proofs and could otherwise try all 2^40 codes offline within the code's ten minutes and pair its
 * own key before the app's request (which it can hold back) arrives. The code is consumed by the first
 * right proof; five wrong proofs burn it too (it is worth guessing online only that often).
 */
export const PAIRING_CODE_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
export const PAIRING_CODE_LENGTH = 8;
export const PAIRING_CODE_TTL_MS = 10 * 60 * 1000;
export const MAX_PAIRING_FAILURES = 5;
const PROOF_CONTEXT = 'camveil-pair-v2';
const HUB_PROOF_CONTEXT = 'camveil-pair-v2-hub';
const LABEL_CONTEXT = 'camveil-pair-v2-label';
const SCRYPT_OPTIONS = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

const scryptAsync = promisify(scrypt) as (password: string, salt: string, keylen: number, options: typeof SCRYPT_OPTIONS) => Promise<Buffer>;

export interface PairingCode {
  code: string;
  /** Unix milliseconds. */
  expiresAt: number;
}

/** What the app's proof covers: the `pair` arguments without `proof`, and the hub it pairs with. */
export interface PairingClaim {
  hubId: string;
  publicKey: string;
  recipient: string;
  /** The device label sealed under the code's key (sealLabel). */
  sealedLabel?: string | undefined;
}

/** A code as typed by a person: upper-cased, spaces and dashes removed. */
export function normaliseCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '');
}

/** What the hub's proof covers: its identity, as the app will pin it, and the app key it answers. */
export interface HubBinding {
  hubId: string;
  baseTopic: string;
  /** The hub's raw Ed25519 public key, base64. */
  signingKey: string;
  /** The hub's age recipient. */
  recipient: string;
  /** The app's raw Ed25519 public key, base64. */
  appKey: string;
}

/** The key both proofs are made with (see the module comment): 32 MiB and some 100 ms of scrypt. */
export function pairingKey(code: string): Promise<Buffer> {
  return scryptAsync(normaliseCode(code), PROOF_CONTEXT, 32, SCRYPT_OPTIONS);
}

/** The app's proof of knowing the code for `claim`, base64. */
export function appProof(key: Buffer, claim: PairingClaim): string {
  const body: Record<string, string> = { hubId: claim.hubId, publicKey: claim.publicKey, recipient: claim.recipient };
  if (claim.sealedLabel !== undefined) body.sealedLabel = claim.sealedLabel;
  return createHmac('sha256', key).update(`${PROOF_CONTEXT}\n${canonicalJson(body)}`, 'utf8').digest('base64');
}

/** The hub's proof of knowing the code for `binding`, base64. */
export function hubProof(key: Buffer, binding: HubBinding): string {
  const body = { hubId: binding.hubId, baseTopic: binding.baseTopic, signingKey: binding.signingKey, recipient: binding.recipient, appKey: binding.appKey };
  return createHmac('sha256', key).update(`${HUB_PROOF_CONTEXT}\n${canonicalJson(body)}`, 'utf8').digest('base64');
}

/** Whether `proof` (base64) is the hub's proof for `binding`, compared in constant time. */
export function hubProofMatches(key: Buffer, binding: HubBinding, proof: string): boolean {
  const given = decodeBase64(proof);
  const expected = Buffer.from(hubProof(key, binding), 'base64');
  return given !== undefined && given.length === expected.length && timingSafeEqual(given, expected);
}

function labelKey(key: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), LABEL_CONTEXT, 32));
}

/** The device label sealed under the code's key (see the module comment), base64. */
export function sealLabel(key: Buffer, label: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', labelKey(key), nonce);
  const body = Buffer.concat([cipher.update(label, 'utf8'), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

/** The label inside `sealed`, or undefined when it does not open under the code's key. */
export function openLabel(key: Buffer, sealed: string): string | undefined {
  const bytes = decodeBase64(sealed);
  if (bytes === undefined || bytes.length < 12 + 16) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', labelKey(key), bytes.subarray(0, 12));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

interface CodeRow {
  code: string;
  expires_at: number;
  failures: number;
}

function failed(message: string): CamveilError {
  return new CamveilError('CAMVEIL_E_PAIRING_FAILED', message, { where: 'pair' });
}

/**
 * The one active pairing code, kept in table `control_pairing` (created by KeyRegistry) so that the
 * `camveil pair` process and the running gateway share it. The code is stored in the clear: it is short-lived,
 * one-time and the database is 0600; the hub needs it to check proofs.
 */
export class Pairing {
  readonly #db: Database;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(db: Database) {
    this.#db = db;
  }

  /** A new code valid for ten minutes; it replaces any code still active. */
  createPairingCode(now: number): PairingCode {
    let code = '';
    for (let i = 0; i < PAIRING_CODE_LENGTH; i++) code += PAIRING_CODE_ALPHABET[randomInt(PAIRING_CODE_ALPHABET.length)];
    const expiresAt = now + PAIRING_CODE_TTL_MS;
    this.#db
      .prepare(
        `INSERT INTO control_pairing (id, code, expires_at, failures) VALUES (1, ?, ?, 0)
         ON CONFLICT (id) DO UPDATE SET code = excluded.code, expires_at = excluded.expires_at, failures = 0`,
      )
      .run(code, expiresAt);
    return { code, expiresAt };
  }

  /**
   * Checks `proof` against the active code and consumes the code when it is right; `register` runs in the
   * same transaction, given the code's key (a failing register leaves the code unused). Returns register's value and the code's
   * key, with which the hub makes its own proof (hubProof) for the answer.
   *
   * @throws CamveilError `CAMVEIL_E_PAIRING_FAILED` when there is no active code, it expired, or the proof is
   * wrong (the fifth wrong proof deletes the code); whatever `register` throws.
   */
  consume<T>(claim: PairingClaim, proof: string, now: number, register: (key: Buffer) => T): Promise<{ value: T; key: Buffer }> {
    // One attempt at a time: each costs a 32 MiB scrypt, and a flood of attempts from the broker must meet the
    // failure limit (and then fail fast) rather than queue thousands of scrypts in libuv's thread pool.
    const attempt = this.#tail.then(() => this.#consume(claim, proof, now, register));
    this.#tail = attempt.catch(() => undefined);
    return attempt;
  }

  async #consume<T>(claim: PairingClaim, proof: string, now: number, register: (key: Buffer) => T): Promise<{ value: T; key: Buffer }> {
    const row = this.#active();
    if (row === undefined) throw failed('there is no active pairing code (run camveil pair on the hub)');
    if (row.expires_at <= now) {
      this.#db.prepare('DELETE FROM control_pairing WHERE id = 1 AND code = ?').run(row.code);
      throw failed('the pairing code has expired');
    }
    const given = decodeBase64(proof);
    const key = await pairingKey(row.code);
    const expected = Buffer.from(appProof(key, claim), 'base64');
    const right = given !== undefined && given.length === expected.length && timingSafeEqual(given, expected);
    // The failure count must survive the refusal, so the transaction reports "wrong" instead of throwing.
    const outcome = this.#db.transaction((): { ok: true; value: T } | { ok: false } => {
      // Re-read: another request may have used, replaced or burnt the code while scrypt ran.
      const current = this.#active();
      if (current?.code !== row.code) throw failed('the pairing code was already used or replaced');
      if (!right) {
        if (current.failures + 1 >= MAX_PAIRING_FAILURES) this.#db.prepare('DELETE FROM control_pairing WHERE id = 1').run();
        else this.#db.prepare('UPDATE control_pairing SET failures = failures + 1 WHERE id = 1').run();
        return { ok: false };
      }
      const value = register(key);
      this.#db.prepare('DELETE FROM control_pairing WHERE id = 1').run();
      return { ok: true, value };
    }).immediate();
    if (!outcome.ok) throw failed('the pairing proof is wrong (wrong code?)');
    return { value: outcome.value, key };
  }

  #active(): CodeRow | undefined {
    return this.#db.prepare<[], CodeRow>('SELECT code, expires_at, failures FROM control_pairing WHERE id = 1').get();
  }
}
