import { createReadStream, type ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { wallNow } from '../clock.js';
import { CamveilError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Gate } from '../policy/gate.js';
import type { Outbox, OutboxItem } from './outbox.js';
import type { PutOutcome, RemoteObjectStore } from './remote-object-store.js';
import { backoffDelay } from './response.js';

export interface UploaderOptions {
  outbox: Outbox;
  /** Asked right before every attempt. */
  gate: Gate;
  /** Where objects go (see remote-store-factory.ts); opened by start(). */
  remote: RemoteObjectStore;
  logger: Logger;
  /** Uploads in flight at once: 1 (default) or 2. */
  concurrency?: 1 | 2;
  /**
   * While items wait out their backoff, one of them is tried at least this often (a probe of the
   * endpoint; its success makes the whole queue due). Bounds the drain delay after an outage. Default 30 s.
   */
  probeIntervalMs?: number;
  /** Backoff of retried attempts: full jitter up to min(cap, base·2^(n−1)). Defaults 1 s and 5 min. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** How long an item the gate refused waits before the gate is asked again (default 60 s; kick() does not shorten it). */
  gateRecheckMs?: number;
  /**
   * Wall time (src/clock.ts), the same as the outbox's. With the real clock the outbox watches it for steps,
   * and a step moves a `Retry-After` hold and the probe as it moves the queue, so a clock set back an hour
   * delays nothing.
   */
  now?: () => number;
  random?: () => number;
  /** Told the outcome of every attempt (for state, events and the demo); must not throw. */
  onOutcome?: (report: UploadReport) => void;
  /** Told what the store's check() at start found (stores that have one: RemoteObjectStore.check); must not throw. */
  onStoreCheck?: (result: StoreCheckReport) => void;
}

/** The store's check at start: usable (with what it tidied), or why not (the queue waits; it is tried again). */
export type StoreCheckReport = { ok: true; cleaned: number; warning?: string } | { ok: false; code: string; message: string; retryInMs: number };

/** What became of one upload attempt. */
export interface UploadReport {
  objectId: string;
  kind: string;
  bytes: number;
  ms: number;
  result: 'uploaded' | 'rejected' | 'retry' | 'aborted';
  code?: string;
  message?: string;
}

interface InFlight {
  controller: AbortController;
  done: Promise<void>;
}

/** Retry-After values beyond this are clamped: a server must not park the queue for days. */
const MAX_RETRY_AFTER_MS = 3_600_000;
/** The longest the scheduler sleeps without looking at the outbox (clock jumps, rows added by others). */
const MAX_IDLE_MS = 60_000;

type Settings = Required<Omit<UploaderOptions, 'onOutcome' | 'onStoreCheck'>> & {
  onOutcome: ((report: UploadReport) => void) | undefined;
  onStoreCheck: ((result: StoreCheckReport) => void) | undefined;
};

/**
 * The upload scheduler: takes the outbox's age files in order, asks the gate right before each attempt,
 * and hands each file, streamed (never read whole), to the remote store, one or two at a time. Outcomes:
 * stored → uploaded; refused for good → failed with the store's message; anything else → queued again
 * with backoff, and a pause the store asked for (Retry-After) holds every request. abortAll() cuts every
 * request at once (through the signal the store was given) and leaves their items queued.
 */
export class Uploader {
  readonly #o: Settings;
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Map<string, InFlight>();
  /** No request starts before this (epoch ms of the uploader's clock): the store's last Retry-After. */
  #holdUntil = 0;
  /** When the last attempt started: a probe is due probeIntervalMs after it. */
  #lastAttemptAt = 0;
  #unfollowClock: (() => void) | undefined;
  /** False until the store's check() passed since the last start: nothing is sent before. */
  #ready = false;
  #check: { controller: AbortController; timer: NodeJS.Timeout | undefined; failures: number } | undefined;

  constructor(options: UploaderOptions) {
    this.#o = {
      concurrency: 1,
      probeIntervalMs: 30_000,
      backoffBaseMs: 1000,
      backoffCapMs: 300_000,
      gateRecheckMs: 60_000,
      now: wallNow,
      random: Math.random,
      ...options,
      onOutcome: options.onOutcome,
      onStoreCheck: options.onStoreCheck,
    };
  }

  /**
   * Opens the remote store (reads its credentials) and starts uploading what is due.
   *
   * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` naming the credentials file (never its content)
   * when it cannot be read or is empty.
   */
  start(): void {
    if (this.#running) return;
    this.#o.remote.open();
    this.#running = true;
    this.#unfollowClock = this.#o.outbox.onClockStep((step) => this.#followClockStep(step));
    this.#lastAttemptAt = this.#o.now();
    const { type, origin } = this.#o.remote.description;
    this.#o.logger.info({ endpoint: origin, transport: type, concurrency: this.#o.concurrency }, 'uplink started');
    this.#ready = this.#o.remote.check === undefined;
    if (!this.#ready) this.#checkStore();
    this.#pump();
  }

  /**
   * Runs the store's check(); uploads start once it passes. A failure (no such bucket, refused credentials,
   * the store unreachable) is logged with its code, told, and the check tried again after a backoff (at most
   * probeIntervalMs), the credentials read again first: the queue waits, nothing is marked failed.
   */
  #checkStore(): void {
    const check = this.#o.remote.check?.bind(this.#o.remote);
    if (check === undefined) return;
    const state = { controller: new AbortController(), timer: undefined as NodeJS.Timeout | undefined, failures: this.#check?.failures ?? 0 };
    this.#check = state;
    const { logger } = this.#o;
    const { type, origin } = this.#o.remote.description;
    check(state.controller.signal).then(
      (result) => {
        if (state.controller.signal.aborted || !this.#running) return;
        state.failures = 0;
        this.#ready = true;
        logger.info({ endpoint: origin, transport: type, cleaned: result.cleaned }, 'uplink store checked; uploads start');
        if (result.warning !== undefined) logger.warn({ endpoint: origin, transport: type, reason: result.warning }, 'uplink store: unfinished uploads of an earlier run not tidied');
        this.#o.onStoreCheck?.({ ok: true, cleaned: result.cleaned, ...(result.warning === undefined ? {} : { warning: result.warning }) });
        this.#pump();
      },
      (error: unknown) => {
        if (state.controller.signal.aborted || !this.#running) return;
        state.failures++;
        const e = error instanceof CamveilError ? error : new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `store check failed: ${error instanceof Error ? error.message : String(error)}`, { where: 'uplink' });
        const retryInMs = Math.min(this.#o.probeIntervalMs, Math.max(this.#o.backoffBaseMs, backoffDelay(state.failures, this.#o.random, this.#o.backoffBaseMs, this.#o.backoffCapMs)));
        logger.error({ endpoint: origin, transport: type, code: e.code, reason: e.message, retryInMs }, 'uplink store cannot be used; uploads wait');
        this.#o.onStoreCheck?.({ ok: false, code: e.code, message: e.message, retryInMs });
        state.timer = setTimeout(() => {
          if (!this.#running || this.#check !== state) return;
          try {
            // The household may have fixed the credentials file meanwhile.
            this.#o.remote.open();
          } catch (openError) {
            logger.error({ code: openError instanceof CamveilError ? openError.code : 'error', reason: openError instanceof Error ? openError.message : String(openError) }, 'uplink store credentials unreadable');
          }
          this.#checkStore();
        }, retryInMs);
      },
    );
  }

  #stopCheck(): void {
    if (this.#check === undefined) return;
    this.#check.controller.abort();
    clearTimeout(this.#check.timer);
    this.#check = undefined;
  }

  /** Stops scheduling, aborts what is in flight (those items stay queued) and waits for it to settle. */
  async stop(): Promise<void> {
    if (!this.#running && this.#inFlight.size === 0) return;
    this.#running = false;
    this.#ready = false;
    this.#stopCheck();
    this.#unfollowClock?.();
    this.#clearTimer();
    await this.abortAll('stopping');
    this.#o.logger.info('uplink stopped');
  }

  /**
   * Aborts every request in flight and resolves once each has settled and its item is back to `queued`
   * (not counted as an attempt). The uploader keeps running: items are tried again when due, after the
   * gate is asked again, so for local-only mode the gate must already refuse when this is called.
   */
  async abortAll(reason: string): Promise<void> {
    const pending = [...this.#inFlight.values()];
    for (const f of pending) f.controller.abort(new CamveilError('CAMVEIL_E_UPLOAD_ABORTED', `upload aborted: ${reason}`, { where: 'uplink' }));
    await Promise.allSettled(pending.map((f) => f.done));
  }

  /** Wakes the scheduler, e.g. after something was enqueued. */
  kick(): void {
    if (this.#running) this.#pump();
  }

  /** Object ids being uploaded now. */
  uploading(): string[] {
    return [...this.#inFlight.keys()];
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #pump(): void {
    this.#clearTimer();
    // Until the store's check passed nothing goes; its success pumps.
    if (!this.#running || !this.#ready) return;
    const { outbox, gate, logger } = this.#o;
    try {
      // Before anything is compared with the clock: a step since the last pass moves the schedule first.
      outbox.followClock();
      while (this.#inFlight.size < this.#o.concurrency) {
        const now = this.#o.now();
        // The store asked for a pause (Retry-After): nothing at all goes to it before then.
        if (now < this.#holdUntil) break;
        let item = outbox.nextDue(now);
        if (item === undefined && this.#inFlight.size === 0 && now >= this.#lastAttemptAt + this.#o.probeIntervalMs) {
          // Everything is waiting out a backoff: try the first of them now, to learn whether the endpoint is back.
          item = outbox.nextBackingOff();
          if (item !== undefined) logger.debug({ object: item.objectId, dueIn: item.nextAttemptAt - now }, 'probing the endpoint');
        }
        if (item === undefined) break;
        const decision = gate.mayUpload({ objectId: item.objectId, kind: item.kind, ...(item.cameraId === undefined ? {} : { cameraId: item.cameraId }) });
        if (!decision.allowed) {
          // Nothing is sent: the item stays queued, with the gate's reason, until the gate is asked again.
          outbox.release(item.objectId, { code: 'gate', message: `gate: ${decision.reason}` }, this.#o.gateRecheckMs);
          logger.info({ object: item.objectId, reason: decision.reason }, 'upload held by the gate');
          continue;
        }
        outbox.markUploading(item.objectId);
        this.#lastAttemptAt = now;
        this.#launch(item);
      }
    } catch (error) {
      logger.error({ err: error }, 'uplink scheduler failed; retrying shortly');
      this.#timer = setTimeout(() => this.#pump(), 1000);
      return;
    }
    if (this.#inFlight.size < this.#o.concurrency) {
      const now = this.#o.now();
      let at = outbox.nextWakeAt() ?? now + MAX_IDLE_MS;
      if (this.#inFlight.size === 0 && outbox.nextBackingOff() !== undefined) at = Math.min(at, this.#lastAttemptAt + this.#o.probeIntervalMs);
      at = Math.max(at, this.#holdUntil);
      this.#timer = setTimeout(() => this.#pump(), Math.min(MAX_IDLE_MS, Math.max(0, at - now)));
    }
  }

  /**
   * The wall clock stepped (NTP, a person): every time this uploader scheduled moves with it, so what was
   * due in 30 s is still due in 30 s, not an hour later (a step back) or at once (a step forward).
   */
  #followClockStep(step: { stepMs: number; moved: number }): void {
    if (this.#holdUntil > 0) this.#holdUntil += step.stepMs;
    this.#lastAttemptAt += step.stepMs;
    this.#o.logger.warn({ stepMs: step.stepMs, moved: step.moved }, 'the wall clock stepped; upload schedule moved with it');
  }

  #launch(item: OutboxItem): void {
    const controller = new AbortController();
    const done = this.#attempt(item, controller.signal)
      .catch((error: unknown) => this.#o.logger.error({ err: error, object: item.objectId }, 'uplink bookkeeping failed'))
      .finally(() => {
        this.#inFlight.delete(item.objectId);
        this.#pump();
      });
    this.#inFlight.set(item.objectId, { controller, done });
  }

  async #attempt(item: OutboxItem, signal: AbortSignal): Promise<void> {
    const { outbox, logger } = this.#o;
    const started = performance.now();
    const outcome = await this.#put(item, signal);
    const log = { object: item.objectId, kind: item.kind, ms: Math.round(performance.now() - started) };
    const tell = (result: UploadReport['result'], error?: { code: string; message: string }) =>
      this.#o.onOutcome?.({ objectId: item.objectId, kind: item.kind, bytes: item.bytes, ms: log.ms, result, ...(error === undefined ? {} : { code: error.code, message: error.message }) });
    switch (outcome.kind) {
      case 'uploaded': {
        outbox.markUploaded(item.objectId);
        logger.info({ ...log, bytes: item.bytes }, 'object uploaded');
        // The endpoint answers again: what was backing off is due now (not before a pause the store asked for).
        const expedited = outbox.expediteQueued(Math.max(this.#o.now(), this.#holdUntil));
        if (expedited > 0) logger.info({ expedited }, 'endpoint answers again; queued uploads due now');
        tell('uploaded');
        return;
      }
      case 'reject':
        outbox.markFailed(item.objectId, outcome.error);
        logger.warn({ ...log, code: outcome.error.code, reason: outcome.error.message }, 'upload rejected; not retried');
        tell('rejected', outcome.error);
        return;
      case 'retry': {
        if (outcome.error.code === 'CAMVEIL_E_UPLOAD_ABORTED') {
          outbox.release(item.objectId, outcome.error, 0);
          logger.info({ ...log, reason: outcome.error.message }, 'upload aborted; left queued');
          tell('aborted', outcome.error);
          return;
        }
        const attempts = item.attempts + 1;
        const backoff = backoffDelay(attempts, this.#o.random, this.#o.backoffBaseMs, this.#o.backoffCapMs);
        const retryAfter = Math.min(outcome.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
        const delay = Math.max(backoff, retryAfter);
        // Retry-After speaks for the store, not for this object: hold every request until then.
        if (retryAfter > 0) this.#holdUntil = Math.max(this.#holdUntil, this.#o.now() + retryAfter);
        outbox.retryLater(item.objectId, outcome.error, delay);
        logger.warn({ ...log, code: outcome.error.code, reason: outcome.error.message, attempts, retryInMs: delay }, 'upload failed; will retry');
        tell('retry', outcome.error);
        return;
      }
      default:
        outcome satisfies never;
    }
  }

  /**
   * Opens the item's file and hands it to the store. Never throws. A file that cannot be opened fails for
   * good (retention or local-only mode removed it: retrying cannot bring it back); an attempt cut by
   * abortAll() is an abort, whatever the store made of it, unless the store had already confirmed it.
   */
  async #put(item: OutboxItem, signal: AbortSignal): Promise<PutOutcome> {
    let file: ReadStream | undefined;
    try {
      let size: number;
      try {
        const handle = await open(item.path, 'r');
        file = createReadStream('', { fd: handle, highWaterMark: 64 * 1024 });
        // The size comes from the open file, not the outbox row: the store is told what it is sent.
        size = (await handle.stat()).size;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        return { kind: 'reject', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `local object file cannot be opened (${code})`, { where: 'uplink', cause: error }) };
      }
      const outcome = await this.#o.remote.put({ objectId: item.objectId, bytes: size }, file, signal);
      if (outcome.kind !== 'uploaded' && signal.aborted) return aborted(signal);
      return outcome;
    } catch (error) {
      // A store broke its promise not to throw: count it as a failure that may pass.
      if (signal.aborted) return aborted(signal);
      return { kind: 'retry', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `upload failed: ${error instanceof Error ? error.message : String(error)}`, { where: 'uplink', cause: error }) };
    } finally {
      file?.destroy();
    }
  }
}

function aborted(signal: AbortSignal): PutOutcome {
  const reason: unknown = signal.reason;
  return { kind: 'retry', error: reason instanceof CamveilError ? reason : new CamveilError('CAMVEIL_E_UPLOAD_ABORTED', 'upload aborted', { where: 'uplink' }) };
}
