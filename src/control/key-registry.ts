import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { base32 } from '../crypto/base32.js';
import { CamveilError } from '../errors.js';
import { migrate } from '../store/database.js';

/**
 * Paired app keys (table `control_keys`) and the one active pairing code (`control_pairing`, see pairing.ts).
 * `last_seq` is the replay guard: it is in SQLite so a restart does not reopen old sequence numbers.
 * The label is chosen by the user ("kitchen tablet"); it is never logged nor put in audit records.
 */
export const CONTROL_SCHEMA_STEPS: readonly string[] = [
  `CREATE TABLE control_keys (
     key_id TEXT PRIMARY KEY,
     public_key TEXT NOT NULL UNIQUE,
     recipient TEXT NOT NULL,
     label TEXT,
     paired_at INTEGER NOT NULL,
     revoked_at INTEGER,
     last_seq INTEGER NOT NULL DEFAULT 0
   ) STRICT;
   CREATE TABLE control_pairing (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     code TEXT NOT NULL,
     expires_at INTEGER NOT NULL,
     failures INTEGER NOT NULL DEFAULT 0
   ) STRICT;`,
];

/** A paired app key as stored. Times are Unix milliseconds. */
export interface PairedKey {
  keyId: string;
  /** Raw 32-byte Ed25519 public key, base64. */
  publicKey: string;
  /** The phone's age recipient (`age1…` or `age1pq1…`). */
  recipient: string;
  label: string | undefined;
  pairedAt: number;
  revokedAt: number | undefined;
  lastSeq: number;
}

interface KeyRow {
  key_id: string;
  public_key: string;
  recipient: string;
  label: string | null;
  paired_at: number;
  revoked_at: number | null;
  last_seq: number;
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes canonical padded base64 (RFC 4648 §4); undefined for anything else (Buffer.from is lenient). */
export function decodeBase64(text: string): Buffer | undefined {
  if (!STRICT_BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/** The raw public key of a base64 Ed25519 key, or undefined when it is not 32 bytes of canonical base64. */
export function rawEd25519(publicKey: string): Buffer | undefined {
  const raw = decodeBase64(publicKey);
  return raw?.length === 32 ? raw : undefined;
}

/** A node:crypto key object for a raw 32-byte Ed25519 public key. */
export function ed25519KeyObject(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The key id of a raw Ed25519 public key: the first 16 characters of base32(SHA-256(raw)), lower case. */
export function keyIdOf(raw: Buffer): string {
  return base32(createHash('sha256').update(raw).digest()).slice(0, 16);
}

function toKey(row: KeyRow): PairedKey {
  return {
    keyId: row.key_id,
    publicKey: row.public_key,
    recipient: row.recipient,
    label: row.label ?? undefined,
    pairedAt: row.paired_at,
    revokedAt: row.revoked_at ?? undefined,
    lastSeq: row.last_seq,
  };
}

/** The paired app keys of this hub, in the hub's SQLite database (module `control`). */
export class KeyRegistry {
  readonly #db: Database;

  /** Creates or upgrades the control tables through `migrate(db, 'control', …)`. */
  constructor(db: Database) {
    this.#db = db;
    migrate(db, 'control', CONTROL_SCHEMA_STEPS);
  }

  /** The database the registry lives in (pairing codes share it). */
  get db(): Database {
    return this.#db;
  }

  /** The key with this id, revoked or not; undefined when it was never paired. */
  get(keyId: string): PairedKey | undefined {
    const row = this.#db.prepare<[string], KeyRow>('SELECT * FROM control_keys WHERE key_id = ?').get(keyId);
    return row === undefined ? undefined : toKey(row);
  }

  /** Every key ever paired, oldest first (revoked ones included, with `revokedAt`). */
  list(): PairedKey[] {
    return this.#db.prepare<[], KeyRow>('SELECT * FROM control_keys ORDER BY paired_at, key_id').all().map(toKey);
  }

  /** Recipients of the keys that are not revoked: who the hub seals events and labels for. */
  activeRecipients(): string[] {
    const rows = this.#db.prepare<[], { recipient: string }>('SELECT DISTINCT recipient FROM control_keys WHERE revoked_at IS NULL').all();
    return rows.map((r) => r.recipient);
  }

  /**
   * Registers a key. The caller has checked the recipient; the public key is checked here.
   *
   * @throws CamveilError `CAMVEIL_E_REQUEST_INVALID` for a public key that is not 32 bytes of base64,
   * `CAMVEIL_E_PAIRING_FAILED` when the key is already paired or was revoked (a revoked key stays revoked).
   */
  add(entry: { publicKey: string; recipient: string; label?: string | undefined }, now: number): PairedKey {
    const raw = rawEd25519(entry.publicKey);
    if (raw === undefined) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', 'publicKey: must be a 32-byte Ed25519 key in base64', { where: 'publicKey' });
    const keyId = keyIdOf(raw);
    const result = this.#db
      .prepare('INSERT INTO control_keys (key_id, public_key, recipient, label, paired_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
      .run(keyId, entry.publicKey, entry.recipient, entry.label ?? null, now);
    if (result.changes !== 1) {
      throw new CamveilError('CAMVEIL_E_PAIRING_FAILED', `key ${keyId} is already paired or was revoked`, { where: 'publicKey' });
    }
    return this.get(keyId)!;
  }

  /**
   * Revokes a key for good: its requests are refused from now on, and it cannot be paired again.
   *
   * @throws CamveilError `CAMVEIL_E_UNKNOWN_KEY` when no active key has this id.
   */
  revoke(keyId: string, now: number): PairedKey {
    const result = this.#db.prepare('UPDATE control_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL').run(now, keyId);
    if (result.changes !== 1) throw new CamveilError('CAMVEIL_E_UNKNOWN_KEY', `no active paired key ${keyId}`, { where: 'keyId' });
    return this.get(keyId)!;
  }

  /**
   * Records `seq` as the key's last sequence number, in one UPDATE that refuses any `seq <= lastSeq`, so two
   * requests racing with the same number cannot both pass.
   *
   * @throws CamveilError `CAMVEIL_E_REPLAY` when `seq` is not above the last one, `CAMVEIL_E_UNKNOWN_KEY`
   * when the key is not paired or was revoked.
   */
  recordSeq(keyId: string, seq: number): void {
    const result = this.#db
      .prepare('UPDATE control_keys SET last_seq = ? WHERE key_id = ? AND revoked_at IS NULL AND last_seq < ?')
      .run(seq, keyId, seq);
    if (result.changes === 1) return;
    const key = this.get(keyId);
    if (key === undefined || key.revokedAt !== undefined) {
      throw new CamveilError('CAMVEIL_E_UNKNOWN_KEY', `key ${keyId} is not paired or was revoked`, { where: 'keyId' });
    }
    throw new CamveilError('CAMVEIL_E_REPLAY', `sequence number ${seq} is not above the last one used by key ${keyId}`, { where: 'seq' });
  }
}
