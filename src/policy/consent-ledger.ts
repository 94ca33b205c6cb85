import type { Database } from 'better-sqlite3';
import { CamveilError } from '../errors.js';
import { POLICY_VERSION_LABEL } from './policy-version.js';
import { CONSENT_NAMES, type ConsentName } from './vocabulary.js';

/**
 * The consent ledger: an append-only list of what the household granted, withdrew and accepted, each
 * record bound to the privacy-policy version in force and to the digest of the signed request that asked
 * for it. Current consent is a fold over the records — never a stored flag that could drift from them.
 *
 * Reading is strict: one malformed row, unknown consent name or gap in `seq` makes the whole ledger
 * unreadable (`CAMVEIL_E_CONSENT_UNREADABLE`), and callers fail closed (decide.ts: local-only, no faces).
 * Guessing the state of a damaged ledger could revive a withdrawn consent.
 */

/** Record kinds. `enrol`/`unenrol` record face enrolment of one person (see recordEnrolment). */
export const RECORD_KINDS = ['grant', 'withdraw', 'accept-policy', 'enrol', 'unenrol'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

/** The actor for changes made at the hub itself (CLI), rather than by a paired app key. */
export const LOCAL_OPERATOR = 'local-operator';

/** What a guardian signs to enrol a minor (Foscam Privacy Notice 2021, §6.1: written consent of a parent or guardian). */
export interface GuardianAttestation {
  /** The guardian's paired app key id. */
  guardianKeyId: string;
  statement: string;
  /** ISO 8601 date-time. */
  at: string;
}

/**
 * An attestation someone with authority checked: `paired-key` — signed by the guardian's paired app key
 * for this hub and this person, fresh (control/guardian-attestation.ts); `console` — vouched for at the
 * hub's own console by its operator. Only these enrol a minor (EnrolmentStore.enrol).
 */
export type VerifiedGuardianAttestation = GuardianAttestation & { verifiedBy: 'paired-key' | 'console' };

/** One ledger record, as read back. */
export interface ConsentRecord {
  seq: number;
  /** ISO 8601 date-time in UTC. */
  at: string;
  /** Paired key id, or `local-operator`. */
  actor: string;
  kind: RecordKind;
  /** For grant/withdraw. */
  consent?: ConsentName;
  /** The policy version in force when recorded; for `accept-policy`, the version accepted. */
  policyVersion: string;
  /** Lowercase hex SHA-256 of the exact signed request bytes (links the record to the audit log). */
  requestDigest: string;
  /** For enrol/unenrol: the person's pseudonym (never a name). */
  subject?: string;
  /** For enrol: whether the person is a minor. */
  minor?: boolean;
  /** For enrol of a minor. */
  guardian?: GuardianAttestation;
}

/** The state derived from the ledger: one flag per consent name, true while granted. */
export interface ConsentState extends Record<ConsentName, boolean> {
  acceptedPolicyVersion?: string;
  /** `at` of the last grant, withdraw or accept-policy record. */
  lastChangeAt?: string;
  /** Seq of the last record of any kind; 0 for an empty ledger. */
  seq: number;
}

/** Who enrolled a person, from the fold over enrol/unenrol records. */
export interface Enrolment {
  subject: string;
  minor: boolean;
  seq: number;
  guardianKeyId?: string;
}

/**
 * DDL, idempotent. CHECKs and the two triggers keep honest writers honest; the reader validates every row
 * again because a ledger can also be damaged outside this code (disk, restore, another tool).
 */
export const CONSENT_LEDGER_SCHEMA = `
CREATE TABLE IF NOT EXISTS policy_consent_ledger (
  seq                INTEGER PRIMARY KEY CHECK (seq >= 1),
  at                 TEXT NOT NULL,
  actor              TEXT NOT NULL,
  kind               TEXT NOT NULL CHECK (kind IN ('grant', 'withdraw', 'accept-policy', 'enrol', 'unenrol')),
  consent            TEXT CHECK (consent IN ('cloudUpload', 'faceRecognition', 'crossBorderTransfer', 'localRecording')),
  policy_version     TEXT NOT NULL,
  request_digest     TEXT NOT NULL,
  subject            TEXT,
  minor              INTEGER CHECK (minor IN (0, 1)),
  guardian_key_id    TEXT,
  guardian_statement TEXT,
  guardian_at        TEXT
) STRICT;
CREATE TRIGGER IF NOT EXISTS policy_consent_ledger_no_update BEFORE UPDATE ON policy_consent_ledger
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS policy_consent_ledger_no_delete BEFORE DELETE ON policy_consent_ledger
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
`;

interface Row {
  seq: unknown;
  at: unknown;
  actor: unknown;
  kind: unknown;
  consent: unknown;
  policy_version: unknown;
  request_digest: unknown;
  subject: unknown;
  minor: unknown;
  guardian_key_id: unknown;
  guardian_statement: unknown;
  guardian_at: unknown;
}

const ACTOR = /^[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}$/;
const DIGEST = /^[0-9a-f]{64}$/;
const SUBJECT = /^[A-Za-z0-9_-]{1,128}$/;
// Canonical UTC form only (what Date#toISOString writes), so string order is time order.
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const isIso = (s: unknown): s is string => typeof s === 'string' && ISO_UTC.test(s) && !Number.isNaN(Date.parse(s));
const isConsentName = (s: unknown): s is ConsentName => typeof s === 'string' && (CONSENT_NAMES as readonly string[]).includes(s);
const isKind = (s: unknown): s is RecordKind => typeof s === 'string' && (RECORD_KINDS as readonly string[]).includes(s);

function invalid(what: string): CamveilError {
  return new CamveilError('CAMVEIL_E_CONSENT_INVALID', `consent record not written: ${what}`, { where: 'consent ledger' });
}

/**
 * Throws unless a minor's enrolment carries a complete guardian attestation. Adults need none.
 *
 * @throws CamveilError `CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED` for a minor without a guardian key id,
 * a non-blank statement and a valid ISO 8601 time.
 */
export function requireGuardianAttestation(person: { minor: boolean }, attestation?: GuardianAttestation): void {
  if (!person.minor) return;
  const complete =
    attestation !== undefined &&
    ACTOR.test(attestation.guardianKeyId) &&
    attestation.statement.trim() !== '' &&
    !Number.isNaN(Date.parse(attestation.at));
  if (!complete) {
    throw new CamveilError(
      'CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED',
      'enrolling a minor needs the written consent of a parent or guardian (guardian key id, statement, time)',
      { where: 'enrolment' },
    );
  }
}

/** Validates one row into a record; returns the problem as a string, never the row's content. */
function parseRow(row: Row, expectedSeq: number): ConsentRecord | string {
  if (row.seq !== expectedSeq) return `sequence gap: expected seq ${expectedSeq}, found ${typeof row.seq === 'number' ? row.seq : 'a non-number'}`;
  if (!isIso(row.at)) return `seq ${expectedSeq}: bad time`;
  if (typeof row.actor !== 'string' || !ACTOR.test(row.actor)) return `seq ${expectedSeq}: bad actor`;
  if (!isKind(row.kind)) return `seq ${expectedSeq}: unknown kind`;
  if (typeof row.policy_version !== 'string' || !POLICY_VERSION_LABEL.test(row.policy_version)) return `seq ${expectedSeq}: bad policy version`;
  if (typeof row.request_digest !== 'string' || !DIGEST.test(row.request_digest)) return `seq ${expectedSeq}: bad request digest`;
  const base = { seq: expectedSeq, at: row.at, actor: row.actor, kind: row.kind, policyVersion: row.policy_version, requestDigest: row.request_digest };
  const guardianNull = row.guardian_key_id === null && row.guardian_statement === null && row.guardian_at === null;
  switch (row.kind) {
    case 'grant':
    case 'withdraw':
      if (!isConsentName(row.consent)) return `seq ${expectedSeq}: unknown consent name`;
      if (row.subject !== null || row.minor !== null || !guardianNull) return `seq ${expectedSeq}: enrolment fields on a consent record`;
      return { ...base, consent: row.consent };
    case 'accept-policy':
      if (row.consent !== null || row.subject !== null || row.minor !== null || !guardianNull) return `seq ${expectedSeq}: extra fields on accept-policy`;
      return base;
    case 'enrol':
    case 'unenrol': {
      if (row.consent !== null) return `seq ${expectedSeq}: consent name on an enrolment record`;
      if (typeof row.subject !== 'string' || !SUBJECT.test(row.subject)) return `seq ${expectedSeq}: bad subject`;
      if (row.kind === 'unenrol') {
        if (row.minor !== null || !guardianNull) return `seq ${expectedSeq}: extra fields on unenrol`;
        return { ...base, subject: row.subject };
      }
      if (row.minor !== 0 && row.minor !== 1) return `seq ${expectedSeq}: bad minor flag`;
      const minor = row.minor === 1;
      if (guardianNull) {
        if (minor) return `seq ${expectedSeq}: minor enrolled without guardian attestation`;
        return { ...base, subject: row.subject, minor };
      }
      if (typeof row.guardian_key_id !== 'string' || typeof row.guardian_statement !== 'string' || typeof row.guardian_at !== 'string') {
        return `seq ${expectedSeq}: incomplete guardian attestation`;
      }
      const guardian = { guardianKeyId: row.guardian_key_id, statement: row.guardian_statement, at: row.guardian_at };
      try {
        requireGuardianAttestation({ minor: true }, guardian);
      } catch {
        return `seq ${expectedSeq}: incomplete guardian attestation`;
      }
      return { ...base, subject: row.subject, minor, guardian };
    }
  }
}

/** What the caller supplies for every append. */
export interface AppendContext {
  actor: string;
  /** The policy version in force now. */
  policyVersion: string;
  requestDigest: string;
}

export interface ConsentLedgerOptions {
  /** The clock; injected so tests control time. */
  now?: () => Date;
}

/** An append-only consent ledger in the caller's SQLite database (tables are created if missing). */
export class ConsentLedger {
  readonly #db: Database;
  readonly #now: () => Date;
  readonly #written = new Set<() => void>();

  constructor(db: Database, options: ConsentLedgerOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? (() => new Date());
    db.exec(CONSENT_LEDGER_SCHEMA);
  }

  /**
   * Calls `listener` after every record written through this object, and after an erase: the consent
   * service's cue for changes made in its own process (another process's writes it notices by SQLite's
   * `data_version`). Returns the function that unsubscribes.
   */
  onWrite(listener: () => void): () => void {
    this.#written.add(listener);
    return () => void this.#written.delete(listener);
  }

  #told(): void {
    for (const listener of [...this.#written]) listener();
  }

  /** Records a grant. @throws CamveilError `CAMVEIL_E_CONSENT_INVALID` on malformed input. */
  grant(consent: ConsentName, ctx: AppendContext): ConsentRecord {
    if (!isConsentName(consent)) throw invalid('unknown consent name');
    return this.#append({ kind: 'grant', consent, policyVersion: ctx.policyVersion }, ctx);
  }

  /** Records a withdrawal; always possible, even when the ledger cannot be read. @throws like grant. */
  withdraw(consent: ConsentName, ctx: AppendContext): ConsentRecord {
    if (!isConsentName(consent)) throw invalid('unknown consent name');
    return this.#append({ kind: 'withdraw', consent, policyVersion: ctx.policyVersion }, ctx);
  }

  /** Records that the household accepted `version` (which becomes the record's policyVersion). @throws like grant. */
  acceptPolicy(version: string, ctx: Omit<AppendContext, 'policyVersion'>): ConsentRecord {
    return this.#append({ kind: 'accept-policy', policyVersion: version }, ctx);
  }

  /**
   * Records the enrolment of one person's face. A minor needs a guardian attestation, checked first.
   * Enrolment is kept in the same ledger (not a separate table) so one sequence orders every consent
   * event and the audit log can point at one seq. It does not change ConsentState.
   *
   * @throws CamveilError `CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED` for a minor without a complete attestation,
   * `CAMVEIL_E_CONSENT_INVALID` on other malformed input.
   */
  recordEnrolment(person: { subject: string; minor: boolean }, ctx: AppendContext, attestation?: GuardianAttestation): ConsentRecord {
    requireGuardianAttestation(person, attestation);
    if (!SUBJECT.test(person.subject)) throw invalid('bad subject pseudonym');
    const guardian = person.minor ? attestation : undefined;
    if (guardian !== undefined && !isIso(guardian.at)) throw invalid('guardian attestation time must be ISO 8601 UTC (toISOString)');
    return this.#append({ kind: 'enrol', policyVersion: ctx.policyVersion, subject: person.subject, minor: person.minor, guardian }, ctx);
  }

  /** Records that a person's face templates were removed. @throws CamveilError `CAMVEIL_E_CONSENT_INVALID`. */
  recordUnenrolment(subject: string, ctx: AppendContext): ConsentRecord {
    if (!SUBJECT.test(subject)) throw invalid('bad subject pseudonym');
    return this.#append({ kind: 'unenrol', policyVersion: ctx.policyVersion, subject }, ctx);
  }

  /**
   * Every record in order, validated.
   *
   * @throws CamveilError `CAMVEIL_E_CONSENT_UNREADABLE` when any row is malformed, names an unknown
   * consent or kind, or the sequence has a gap (or does not start at 1).
   */
  records(): ConsentRecord[] {
    let rows: Row[];
    try {
      rows = this.#db.prepare('SELECT * FROM policy_consent_ledger ORDER BY seq').all() as Row[];
    } catch (error) {
      throw new CamveilError('CAMVEIL_E_CONSENT_UNREADABLE', 'the consent ledger cannot be read', { where: 'consent ledger', cause: error });
    }
    return rows.map((row, i) => {
      const parsed = parseRow(row, i + 1);
      if (typeof parsed === 'string') {
        throw new CamveilError('CAMVEIL_E_CONSENT_UNREADABLE', `the consent ledger is corrupt: ${parsed}`, { where: 'consent ledger' });
      }
      return parsed;
    });
  }

  /**
   * Erases every record: the household's deletion request (right to erasure) covers its consent history
   * too. The hub is then as new: nothing granted, local-only. The only way past the append-only triggers,
   * which are dropped and recreated in the same transaction. Returns how many records were erased.
   */
  eraseAll(): number {
    const erased = this.#db.transaction(() => {
      this.#db.exec('DROP TRIGGER IF EXISTS policy_consent_ledger_no_update; DROP TRIGGER IF EXISTS policy_consent_ledger_no_delete;');
      const changes = this.#db.prepare('DELETE FROM policy_consent_ledger').run().changes;
      this.#db.exec(CONSENT_LEDGER_SCHEMA);
      return changes;
    })();
    this.#told();
    return erased;
  }

  /** The current consent, folded from the records. @throws like records(). */
  currentConsent(): ConsentState {
    return foldConsent(this.records());
  }

  /** People currently enrolled (enrol not followed by unenrol). @throws like records(). */
  currentEnrolments(): Enrolment[] {
    const out = new Map<string, Enrolment>();
    for (const r of this.records()) {
      if (r.kind === 'enrol' && r.subject !== undefined) {
        out.set(r.subject, { subject: r.subject, minor: r.minor === true, seq: r.seq, ...(r.guardian ? { guardianKeyId: r.guardian.guardianKeyId } : {}) });
      } else if (r.kind === 'unenrol' && r.subject !== undefined) {
        out.delete(r.subject);
      }
    }
    return [...out.values()];
  }

  #append(
    rec: { kind: RecordKind; consent?: ConsentName; policyVersion: string; subject?: string; minor?: boolean; guardian?: GuardianAttestation },
    ctx: { actor: string; requestDigest: string },
  ): ConsentRecord {
    if (!ACTOR.test(ctx.actor)) throw invalid('bad actor (a paired key id or local-operator)');
    if (!DIGEST.test(ctx.requestDigest)) throw invalid('request digest must be 64 lowercase hex characters (SHA-256)');
    if (!POLICY_VERSION_LABEL.test(rec.policyVersion)) throw invalid('bad policy version label');
    const at = this.#now().toISOString();
    // IMMEDIATE: take the write lock before reading max(seq), so two writers cannot pick the same seq.
    const insert = this.#db.transaction((): number => {
      const { next } = this.#db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM policy_consent_ledger').get() as { next: number };
      this.#db
        .prepare(
          `INSERT INTO policy_consent_ledger
             (seq, at, actor, kind, consent, policy_version, request_digest, subject, minor, guardian_key_id, guardian_statement, guardian_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          next,
          at,
          ctx.actor,
          rec.kind,
          rec.consent ?? null,
          rec.policyVersion,
          ctx.requestDigest,
          rec.subject ?? null,
          rec.minor === undefined ? null : rec.minor ? 1 : 0,
          rec.guardian?.guardianKeyId ?? null,
          rec.guardian?.statement ?? null,
          rec.guardian?.at ?? null,
        );
      return next;
    });
    const seq = insert.immediate();
    this.#told();
    return {
      seq,
      at,
      actor: ctx.actor,
      kind: rec.kind,
      ...(rec.consent !== undefined ? { consent: rec.consent } : {}),
      policyVersion: rec.policyVersion,
      requestDigest: ctx.requestDigest,
      ...(rec.subject !== undefined ? { subject: rec.subject } : {}),
      ...(rec.minor !== undefined ? { minor: rec.minor } : {}),
      ...(rec.guardian !== undefined ? { guardian: rec.guardian } : {}),
    };
  }
}

/** The pure fold: every consent off and no policy accepted until a record says otherwise; the last record wins. */
export function foldConsent(records: readonly ConsentRecord[]): ConsentState {
  const state: ConsentState = { cloudUpload: false, faceRecognition: false, crossBorderTransfer: false, localRecording: false, seq: 0 };
  for (const r of records) {
    state.seq = r.seq;
    if ((r.kind === 'grant' || r.kind === 'withdraw') && r.consent !== undefined) {
      state[r.consent] = r.kind === 'grant';
      state.lastChangeAt = r.at;
    } else if (r.kind === 'accept-policy') {
      state.acceptedPolicyVersion = r.policyVersion;
      state.lastChangeAt = r.at;
    }
  }
  return state;
}
