import { createHmac, randomInt, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Database } from 'better-sqlite3';
import { canonicalJson } from '../audit/canonical.js';
import { CamveilError } from '../errors.js';
import { decodeBase64 } from './key-registry.js';

/**
 * Pairing: `camveil pair` shows a one-time code on the hub; the app proves it knows the code without
 * sending it through the broker.
 *
 * Proof (version 1), computed by the app and checked by the hub:
 *
 * ```
 * key   = scrypt(code, salt = "camveil-pair-v1", N = 2^15, r = 8, p = 1, 32 bytes)
 * proof = base64(HMAC-SHA256(key, "camveil-pair-v1\n" + canonicalJson({publicKey, recipient, label?})))
 * ```
 *
 * `code` is the 8 upper-case characters without separators; `canonicalJson` is audit/canonical.ts (keys
 * sorted, no whitespace; `label` is left out when absent). The proof binds the code to the key and the
 * recipient, so the broker cannot swap in its own key. scrypt rather than the code as HMAC key: the broker
 * sees the proof and could otherwise try all 2^40 codes offline within the code's ten minutes and pair its
 * own key before the app's request (which it can hold back) arrives. The code is consumed by the first
 * right proof; five wrong proofs burn it too (it is worth guessing online only that often).
 */
export const PAIRING_CODE_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
export const PAIRING_CODE_LENGTH = 8;
export const PAIRING_CODE_TTL_MS = 10 * 60 * 1000;
export const MAX_PAIRING_FAILURES = 5;
const PROOF_CONTEXT = 'camveil-pair-v1';
const SCRYPT_OPTIONS = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

const scryptAsync = promisify(scrypt) as (password: string, salt: string, keylen: number, options: typeof SCRYPT_OPTIONS) => Promise<Buffer>;

export interface PairingCode {
  code: string;
  /** Unix milliseconds. */
  expiresAt: number;
}

/** What the proof covers: the `pair` arguments without `proof`. */
export interface PairingClaim {
  publicKey: string;
  recipient: string;
  label?: string | undefined;
}

/** A code as typed by a person: upper-cased, spaces and dashes removed. */
export function normaliseCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '');
}

/** The proof of knowing `code` for `claim` (see the module comment), base64. */
export async function pairingProof(code: string, claim: PairingClaim): Promise<string> {
  const key = await scryptAsync(normaliseCode(code), PROOF_CONTEXT, 32, SCRYPT_OPTIONS);
  const body: Record<string, string> = { publicKey: claim.publicKey, recipient: claim.recipient };
  if (claim.label !== undefined) body.label = claim.label;
  return createHmac('sha256', key).update(`${PROOF_CONTEXT}\n${canonicalJson(body)}`, 'utf8').digest('base64');
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
   * same transaction (a failing register leaves the code unused).
   *
   * @throws CamveilError `CAMVEIL_E_PAIRING_FAILED` when there is no active code, it expired, or the proof is
   * wrong (the fifth wrong proof deletes the code); whatever `register` throws.
   */
  consume<T>(claim: PairingClaim, proof: string, now: number, register: () => T): Promise<T> {
    // One attempt at a time: each costs a 32 MiB scrypt, and a flood of attempts from the broker must meet the
    // failure limit (and then fail fast) rather than queue thousands of scrypts in libuv's thread pool.
    const attempt = this.#tail.then(() => this.#consume(claim, proof, now, register));
    this.#tail = attempt.catch(() => undefined);
    return attempt;
  }

  async #consume<T>(claim: PairingClaim, proof: string, now: number, register: () => T): Promise<T> {
    const row = this.#active();
    if (row === undefined) throw failed('there is no active pairing code (run camveil pair on the hub)');
    if (row.expires_at <= now) {
      this.#db.prepare('DELETE FROM control_pairing WHERE id = 1 AND code = ?').run(row.code);
      throw failed('the pairing code has expired');
    }
    const given = decodeBase64(proof);
    const expected = Buffer.from(await pairingProof(row.code, claim), 'base64');
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
      const value = register();
      this.#db.prepare('DELETE FROM control_pairing WHERE id = 1').run();
      return { ok: true, value };
    }).immediate();
    if (!outcome.ok) throw failed('the pairing proof is wrong (wrong code?)');
    return outcome.value;
  }

  #active(): CodeRow | undefined {
    return this.#db.prepare<[], CodeRow>('SELECT code, expires_at, failures FROM control_pairing WHERE id = 1').get();
  }
}
