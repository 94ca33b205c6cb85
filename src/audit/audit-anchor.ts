import { createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, constants as fsConstants, fchmodSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CamveilError } from '../errors.js';
import type { AuditHead, AuditLog } from './audit-log.js';
import { canonicalJson } from './canonical.js';

/** `<dataDir>/audit-head.json`: the hub's last signed audit head, outside the database. */
export const AUDIT_ANCHOR_FILE = 'audit-head.json';

/**
 * Prefix of the signed bytes. The hub key also signs MQTT messages (JSON payloads of another shape); the
 * prefix keeps a signature made for one from ever passing as the other.
 */
const SIGNING_CONTEXT = 'camveil audit head v1\n';

/**
 * What the hub signs: the head's seq and hash, and when it signed. No hub id: the hub's own signing key is
 * what ties a head to its hub, and the file sits in the data directory, where the hub id never appears in
 * clear (only its pseudonym does).
 */
export interface AuditAnchorHead {
  v: 1;
  seq: number;
  hash: string;
  at: string;
}

/** A head and the hub's Ed25519 signature (base64) over `SIGNING_CONTEXT || canonicalJson(head)`. */
export interface SignedAuditHead {
  head: AuditAnchorHead;
  sig: string;
}

export const signedAuditHeadSchema = z.strictObject({
  head: z.strictObject({
    v: z.literal(1),
    seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters'),
    at: z.string().datetime(),
  }),
  sig: z.string().min(1).max(128),
});

function signedBytes(head: AuditAnchorHead): Buffer {
  return Buffer.from(`${SIGNING_CONTEXT}${canonicalJson({ ...head })}`, 'utf8');
}

/** Signs `head` with the hub's Ed25519 key. */
export function signAuditHead(signingKey: KeyObject, head: AuditHead, at: Date): SignedAuditHead {
  const anchored: AuditAnchorHead = { v: 1, seq: head.seq, hash: head.hash, at: at.toISOString() };
  return { head: anchored, sig: sign(null, signedBytes(anchored), signingKey).toString('base64') };
}

/**
 * Whether `signed` carries a valid signature by `publicKey` (a KeyObject, private or public, or the raw
 * 32-byte Ed25519 key in base64 as the app pins it). Never throws.
 */
export function auditHeadSignatureValid(signed: SignedAuditHead, publicKey: KeyObject | string): boolean {
  try {
    const key = typeof publicKey === 'string' ? rawToKey(publicKey) : createPublicKey(publicKey);
    const sig = Buffer.from(signed.sig, 'base64');
    return key !== undefined && sig.length === 64 && verify(null, signedBytes(signed.head), key, sig);
  } catch {
    return false;
  }
}

function rawToKey(raw: string): KeyObject | undefined {
  const bytes = Buffer.from(raw, 'base64');
  if (bytes.length !== 32) return undefined;
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') }, format: 'jwk' });
}

function anchorInvalid(where: string, reason: string, cause?: unknown): CamveilError {
  return new CamveilError('CAMVEIL_E_AUDIT_ANCHOR_INVALID', `audit anchor ${where} ${reason}`, { where, cause });
}

/**
 * The signed head in `<dataDir>/audit-head.json`; undefined when there is none (a hub from before anchoring).
 *
 * @throws CamveilError `CAMVEIL_E_AUDIT_ANCHOR_INVALID` naming the file when it cannot be read or is not a
 * signed head (its signature is not checked here: see auditHeadSignatureValid).
 */
export function readAuditAnchor(dataDir: string): SignedAuditHead | undefined {
  const file = join(dataDir, AUDIT_ANCHOR_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw anchorInvalid(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw anchorInvalid(file, 'is not JSON');
  }
  const parsed = signedAuditHeadSchema.safeParse(json);
  if (!parsed.success) throw anchorInvalid(file, `is not a signed audit head (${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})`);
  return parsed.data;
}

/**
 * Writes `signed` to `<dataDir>/audit-head.json` atomically: a fresh temporary file (0600), fsynced, renamed
 * over the old one. The directory is not fsynced: after a crash the rename may be lost and the previous
 * anchor back, which is only *behind* the chain, and that is allowed (see AuditAnchorWriter).
 */
export function writeAuditAnchor(dataDir: string, signed: SignedAuditHead): void {
  const file = join(dataDir, AUDIT_ANCHOR_FILE);
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    try {
      // The umask may have narrowed the mode, never widened it; set it exactly anyway.
      fchmodSync(fd, 0o600);
      writeSync(fd, `${JSON.stringify(signed)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/**
 * How `head` (an anchor, or a head the user kept) fails to be in `log`: `the log ends at record N` when the
 * chain is shorter, `record N has hash X…, not Y…` when it holds another record there; undefined when the
 * chain contains it. `count` is the newest seq (from a walk that verified, or `log.head().seq`).
 */
export function headContradiction(log: AuditLog, head: AuditHead, count: number): string | undefined {
  if (head.seq === 0) return undefined;
  if (head.seq > count) return `the log ends at record ${count}`;
  const there = log.entries({ fromSeq: head.seq, limit: 1 })[0];
  if (there?.seq !== head.seq) return `record ${head.seq} is missing`;
  if (there.hash !== head.hash) return `record ${head.seq} has hash ${there.hash.slice(0, 16)}…, not ${head.hash.slice(0, 16)}…`;
  return undefined;
}

/** The result of checking the anchor on disk against the chain, before the writer may replace it. */
export type AnchorCheck =
  | { ok: true; anchor?: SignedAuditHead }
  /** `reason` names the file; `detail` is the same without paths (for the household's security event). */
  | { ok: false; reason: string; detail: string };

/**
 * Keeps `<dataDir>/audit-head.json` at the audit log's committed head, signed by the hub.
 *
 * Write policy: after every committed append (AuditLog's `onAppend`, which reports only committed heads).
 * The anchor is written after the database commit, so it is never *ahead* of what is committed; a crash
 * between the two leaves it behind, which is allowed. Only an anchor beyond the chain's end, or with another
 * hash at its seq, means the log was truncated or rolled back. Two processes appending (the service and a
 * CLI command) may write in either order: the anchor can then step back, never claim more than is committed.
 *
 * Nothing is written until `check` has found the anchor already on disk consistent with the chain: a
 * rolled-back log must not overwrite the evidence of its rollback. Writing never throws (`onError`): the
 * record is committed whether or not its anchor is.
 */
export class AuditAnchorWriter {
  readonly #dataDir: string;
  readonly #signingKey: KeyObject;
  readonly #now: () => Date;
  readonly #onError: (error: unknown) => void;
  #checked: AnchorCheck | undefined;

  constructor(options: { dataDir: string; signingKey: KeyObject; now?: () => Date; onError?: (error: unknown) => void }) {
    this.#dataDir = options.dataDir;
    this.#signingKey = options.signingKey;
    this.#now = options.now ?? (() => new Date());
    this.#onError = options.onError ?? (() => undefined);
  }

  /** `head` of this hub, signed now (what the sealed state carries). */
  signed(head: AuditHead): SignedAuditHead {
    return signAuditHead(this.#signingKey, head, this.#now());
  }

  /**
   * Checks the anchor on disk against `log` (signature by this hub's key, seq and hash in the chain), once;
   * later calls return the first answer. A log without an anchor is consistent (hubs from before anchoring).
   */
  check(log: AuditLog): AnchorCheck {
    if (this.#checked !== undefined) return this.#checked;
    removeStaleTemporaries(this.#dataDir, this.#now().getTime());
    this.#checked = checkAnchor(this.#dataDir, log, this.#signingKey);
    return this.#checked;
  }

  /** Writes `head` as the anchor, when `check` allowed it. Never throws. */
  record(head: AuditHead): void {
    if (this.#checked?.ok !== true) return;
    try {
      writeAuditAnchor(this.#dataDir, this.signed(head));
    } catch (error) {
      this.#onError(error);
    }
  }
}

/** Temporaries of a writer killed between open and rename; a minute's grace spares another process's write in flight. */
function removeStaleTemporaries(dataDir: string, now: number): void {
  try {
    for (const name of readdirSync(dataDir)) {
      if (!TEMPORARY.test(name)) continue;
      const file = join(dataDir, name);
      if (now - statSync(file).mtimeMs > 60_000) rmSync(file, { force: true });
    }
  } catch {
    // Leftovers are untidy, not wrong: the anchor itself is only ever replaced by rename.
  }
}

const TEMPORARY = /^audit-head\.json\.[0-9a-f]{12}\.tmp$/;

/**
 * The anchor in `dataDir` checked against `log` and the hub's key: `{ok: false, reason}` when its signature
 * does not verify, it cannot be read, or the chain does not contain its head (`rolled back: anchor at N but …`).
 */
export function checkAnchor(dataDir: string, log: AuditLog, key: KeyObject): AnchorCheck {
  let anchor: SignedAuditHead | undefined;
  try {
    anchor = readAuditAnchor(dataDir);
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error), detail: 'audit anchor unreadable or malformed' };
  }
  if (anchor === undefined) return { ok: true };
  if (!auditHeadSignatureValid(anchor, key)) {
    return { ok: false, reason: `audit anchor ${join(dataDir, AUDIT_ANCHOR_FILE)} is not signed by this hub's key`, detail: "audit anchor not signed by this hub's key" };
  }
  // Against the newest seq, not a walk of the chain: a broken chain is reported as such elsewhere, and an
  // anchor beyond its end or off its record is a rollback whatever else was done to it.
  const contradiction = headContradiction(log, anchor.head, log.head().seq);
  if (contradiction !== undefined) {
    const reason = `audit log rolled back: anchor at ${anchor.head.seq} but ${contradiction}`;
    return { ok: false, reason, detail: reason };
  }
  return { ok: true, anchor };
}
