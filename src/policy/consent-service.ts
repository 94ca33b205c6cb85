import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AuditLog } from '../audit/audit-log.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { LOCAL_OPERATOR, type ConsentLedger } from './consent-ledger.js';
import type { ConsentName } from './vocabulary.js';
import type { PolicyGate } from './gate.js';
import { readConsent, type ConsentSnapshot } from './read-consent.js';
import { actorKindOf, heldByUnsignedStop } from './withdrawal.js';

export type Mode = 'cloud' | 'local-only';

export interface ModeChange {
  from: Mode | undefined;
  to: Mode;
  reason: string;
  /**
   * Local-only because cloudUpload was withdrawn by unsigned requests only (withdrawal.ts): uploads stop
   * and the queue is held, not destroyed. False for every other local-only reason, and in cloud mode.
   */
  hold: boolean;
}

export interface ConsentServiceOptions {
  db: Database.Database;
  ledger: ConsentLedger;
  gate: PolicyGate;
  audit: AuditLog;
  /** The policy version in force, recorded with every consent change. */
  policyVersion: string;
  logger: Logger;
  /**
   * Makes a mode change true: on entering local-only, cut uploads and destroy the queue — or, with
   * `hold`, cut uploads and keep the queue. Awaited.
   */
  enforce: (change: ModeChange) => Promise<void>;
  /**
   * Told of every unsigned withdrawal once it is recorded: the household must learn that someone who
   * could not sign stopped a flow (the gateway emits the `incident` event `unsigned-stop`).
   */
  onUnsignedStop?: (consent: ConsentName) => void;
  /** How often the ledger is checked for changes written by another process (the CLI, a second hub process). */
  pollMs?: number;
  /** Where `consent.changed` is emitted (the service's bus; the console has none). */
  bus?: EventBus;
}

/** Who asked, and the digest of exactly what they asked (a signed request's payload, or the CLI's words). */
export interface ConsentActor {
  actor: string;
  requestDigest: string;
}

/** The digest a local operator's request is recorded with: SHA-256 of what was asked, in words. */
export function localRequest(words: string): ConsentActor {
  return { actor: LOCAL_OPERATOR, requestDigest: createHash('sha256').update(words).digest('hex') };
}

/**
 * Applies consent changes and keeps the hub's mode true to the ledger. A change made here is enforced
 * before the call returns; a change made by another process on the same database (SQLite's
 * `data_version` moves) is picked up within `pollMs` — the hub's one watcher of the ledger. Entering
 * local-only mode (cloudUpload withdrawn, a material policy not accepted, consent unreadable, or config)
 * runs `enforce` at once. Whenever the ledger's state moves (here, by another writer on this connection
 * such as the enrolment store, or by another process) `consent.changed` is emitted after the mode is
 * enforced, so every other effect of a withdrawal follows the event instead of polling. The mode is never
 * stored on its own: it is derived from the ledger each time, so it survives restarts as the ledger does.
 */
export class ConsentService {
  readonly #o: ConsentServiceOptions;
  #mode: Mode | undefined;
  #reason = '';
  #hold = false;
  #dataVersion = -1;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** The ledger state last told on `consent.changed` (undefined before the first check). */
  #told: string | undefined;
  #offLedger: (() => void) | undefined;

  constructor(options: ConsentServiceOptions) {
    this.#o = options;
  }

  get mode(): { mode: Mode; reason: string } {
    return { mode: this.#mode ?? 'local-only', reason: this.#reason };
  }

  /** The current consent, or `unreadable` (read now, failing closed). */
  snapshot(): ConsentSnapshot {
    return readConsent(this.#o.ledger);
  }

  /**
   * Works out the mode (enforcing it when it is local-only), tells `consent.changed` once, and starts
   * watching the ledger: writes on this connection by their callback, another process's by `data_version`.
   */
  async start(): Promise<void> {
    this.#offLedger = this.#o.ledger.onWrite(() => void this.check());
    await this.check();
    this.#timer = setInterval(() => {
      if (this.#dataVersion !== this.#readDataVersion()) void this.check();
    }, this.#o.pollMs ?? 50);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#offLedger?.();
    this.#offLedger = undefined;
  }

  async grant(consent: ConsentName, who: ConsentActor): Promise<void> {
    const record = this.#o.ledger.grant(consent, { ...who, policyVersion: this.#o.policyVersion });
    this.#auditChange('granted', consent, who, record.seq);
    await this.check();
  }

  /**
   * Withdrawals are always accepted, even when the ledger cannot be read: they only narrow what flows.
   * One that is not signed by a paired key nor made at the console stops the flow and destroys nothing
   * (withdrawal.ts); the household is told (`onUnsignedStop`).
   */
  async withdraw(consent: ConsentName, who: ConsentActor): Promise<void> {
    const record = this.#o.ledger.withdraw(consent, { ...who, policyVersion: this.#o.policyVersion });
    this.#auditChange('withdrawn', consent, who, record.seq);
    await this.check();
    if (actorKindOf(who.actor) === 'unsigned') this.#o.onUnsignedStop?.(consent);
  }

  async acceptPolicy(version: string, who: ConsentActor): Promise<void> {
    const record = this.#o.ledger.acceptPolicy(version, who);
    this.#o.audit.append('policy.accepted', { policyVersion: version, keyId: who.actor, ledgerSeq: record.seq, requestDigest: who.requestDigest });
    await this.check();
  }

  /** Recomputes the mode from the ledger now; serialised, so concurrent callers see changes in order. */
  check(): Promise<void> {
    this.#chain = this.#chain.then(() => this.#recompute()).catch((error: unknown) => {
      this.#o.logger.error({ err: error }, 'consent check failed');
    });
    return this.#chain;
  }

  async #recompute(): Promise<void> {
    this.#dataVersion = this.#readDataVersion();
    await this.#enforceMode();
    const consent = this.snapshot();
    const told = consent === 'unreadable' ? consent : JSON.stringify(consent);
    if (told === this.#told) return;
    this.#told = told;
    this.#o.bus?.emit('consent.changed', { consent, ...(consent === 'unreadable' ? {} : { seq: consent.seq }), mode: this.mode });
  }

  async #enforceMode(): Promise<void> {
    const { mode, reason } = this.#o.gate.mode();
    const hold = mode === 'local-only' && reason === 'cloud-upload-withdrawn' && this.#heldNow();
    // A signed withdrawal after an unsigned one keeps mode and reason but ends the hold: enforced again.
    if (mode === this.#mode && reason === this.#reason && hold === this.#hold) return;
    const from = this.#mode;
    this.#mode = mode;
    this.#reason = reason;
    this.#hold = hold;
    this.#o.logger.info({ from, to: mode, reason, hold }, `mode: ${mode} (${reason}${hold ? ', queue held' : ''})`);
    // At start the mode is only established, not changed; it is still enforced (a queue left from before a
    // withdrawal, or from before the ledger became unreadable, is destroyed now).
    if (from !== undefined && from !== mode) {
      this.#o.audit.append('mode.changed', { from, to: mode, reason, policyVersion: this.#o.policyVersion });
    }
    await this.#o.enforce({ from, to: mode, reason, hold });
  }

  /** Whether cloudUpload is off by unsigned withdrawals only; an unreadable ledger holds nothing (today's rule). */
  #heldNow(): boolean {
    try {
      return heldByUnsignedStop(this.#o.ledger.records(), 'cloudUpload');
    } catch {
      return false;
    }
  }

  #readDataVersion(): number {
    try {
      return this.#o.db.pragma('data_version', { simple: true }) as number;
    } catch {
      return -2;
    }
  }

  #auditChange(state: 'granted' | 'withdrawn', consent: ConsentName, who: ConsentActor, seq: number): void {
    this.#o.audit.append('consent.changed', {
      state,
      feature: consent,
      policyVersion: this.#o.policyVersion,
      keyId: who.actor,
      ledgerSeq: seq,
      requestDigest: who.requestDigest,
    });
  }
}
