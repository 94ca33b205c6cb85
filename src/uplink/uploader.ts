import { createReadStream, readFileSync, type ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { wallNow } from '../clock.js';
import { CamveilError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Gate } from '../policy/gate.js';
import { redactUrl } from '../redact.js';
import { objectUrl } from './endpoint.js';
import type { Outbox, OutboxItem } from './outbox.js';
import { backoffDelay, classifyResponse, readLimited, type UploadOutcome } from './response.js';
import { Throttle, TokenBucket } from './throttle.js';

export interface UploaderOptions {
  outbox: Outbox;
  /** Asked right before every attempt. */
  gate: Gate;
  /** A validated endpoint (see chooseEndpoint); objects go to `<endpoint>/v1/objects/<hub>/<id>`. */
  endpoint: URL;
  hubPseudonym: string;
  /** File holding the bearer token; read once by start(), trimmed. */
  tokenFile: string;
  logger: Logger;
  /** Uploads in flight at once: 1 (default) or 2. */
  concurrency?: 1 | 2;
  /** Bytes per second for all of this uploader's requests together (one token bucket); undefined = no cap. */
  bandwidthBytesPerSecond?: number;
  /**
   * Idle time limit of one request: it fails when the body stops being taken, or no answer comes after
   * it, for this long; a request that keeps moving is never cut off however long a large clip takes.
   * Once the answer has begun, its (small) body must arrive within this long in total, so a server
   * trickling it a byte at a time cannot hold the queue. Default 120 s.
   */
  requestTimeoutMs?: number;
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
}

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

/** Why a request was cut by the uploader's own time limits. */
class RequestTimeout extends Error {
  override readonly name = 'RequestTimeout';
}

/**
 * Uploads the outbox's age files to the cloud with HTTP PUT, one or two at a time, streaming each file
 * (never reading it whole). Outcomes: 2xx with a matching receipt → uploaded; 4xx other than 408/429 →
 * failed for good with the server's message; anything else → queued again with backoff. abortAll() cuts
 * every request at once and leaves their items queued.
 */
export class Uploader {
  private readonly o: Required<Omit<UploaderOptions, 'bandwidthBytesPerSecond' | 'onOutcome'>> & {
    bandwidthBytesPerSecond: number | undefined;
    onOutcome: ((report: UploadReport) => void) | undefined;
  };
  private token: string | undefined;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Map<string, InFlight>();
  private readonly bucket: TokenBucket | undefined;
  /** No request starts before this (epoch ms of the uploader's clock): the server's last Retry-After. */
  private holdUntil = 0;
  /** When the last attempt started: a probe is due probeIntervalMs after it. */
  private lastAttemptAt = 0;
  private unfollowClock: (() => void) | undefined;

  constructor(options: UploaderOptions) {
    this.o = {
      concurrency: 1,
      requestTimeoutMs: 120_000,
      probeIntervalMs: 30_000,
      backoffBaseMs: 1000,
      backoffCapMs: 300_000,
      gateRecheckMs: 60_000,
      now: wallNow,
      random: Math.random,
      ...options,
      bandwidthBytesPerSecond: options.bandwidthBytesPerSecond,
      onOutcome: options.onOutcome,
    };
    this.bucket = options.bandwidthBytesPerSecond === undefined ? undefined : new TokenBucket(options.bandwidthBytesPerSecond);
  }

  /**
   * Reads the token and starts uploading what is due.
   *
   * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` naming the token file (never its content) when it
   * cannot be read or is empty.
   */
  start(): void {
    if (this.running) return;
    this.token = readToken(this.o.tokenFile);
    this.running = true;
    this.unfollowClock = this.o.outbox.onClockStep((step) => this.followClockStep(step));
    this.lastAttemptAt = this.o.now();
    this.o.logger.info(
      { endpoint: redactUrl(this.o.endpoint.origin), hub: this.o.hubPseudonym, concurrency: this.o.concurrency },
      'uplink started',
    );
    this.pump();
  }

  /** Stops scheduling, aborts what is in flight (those items stay queued) and waits for it to settle. */
  async stop(): Promise<void> {
    if (!this.running && this.inFlight.size === 0) return;
    this.running = false;
    this.unfollowClock?.();
    this.clearTimer();
    await this.abortAll('stopping');
    this.o.logger.info('uplink stopped');
  }

  /**
   * Aborts every request in flight and resolves once each has settled and its item is back to `queued`
   * (not counted as an attempt). The uploader keeps running: items are tried again when due, after the
   * gate is asked again, so for local-only mode the gate must already refuse when this is called.
   */
  async abortAll(reason: string): Promise<void> {
    const pending = [...this.inFlight.values()];
    for (const f of pending) f.controller.abort(new CamveilError('CAMVEIL_E_UPLOAD_ABORTED', `upload aborted: ${reason}`, { where: 'uplink' }));
    await Promise.allSettled(pending.map((f) => f.done));
  }

  /** Wakes the scheduler, e.g. after something was enqueued. */
  kick(): void {
    if (this.running) this.pump();
  }

  /** Object ids being uploaded now. */
  uploading(): string[] {
    return [...this.inFlight.keys()];
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private pump(): void {
    this.clearTimer();
    if (!this.running) return;
    const { outbox, gate, logger } = this.o;
    try {
      // Before anything is compared with the clock: a step since the last pass moves the schedule first.
      outbox.followClock();
      while (this.inFlight.size < this.o.concurrency) {
        const now = this.o.now();
        // The server asked for a pause (Retry-After): nothing at all goes to it before then.
        if (now < this.holdUntil) break;
        let item = outbox.nextDue(now);
        if (item === undefined && this.inFlight.size === 0 && now >= this.lastAttemptAt + this.o.probeIntervalMs) {
          // Everything is waiting out a backoff: try the first of them now, to learn whether the endpoint is back.
          item = outbox.nextBackingOff();
          if (item !== undefined) logger.debug({ object: item.objectId, dueIn: item.nextAttemptAt - now }, 'probing the endpoint');
        }
        if (item === undefined) break;
        const decision = gate.mayUpload({ objectId: item.objectId, kind: item.kind, ...(item.cameraId === undefined ? {} : { cameraId: item.cameraId }) });
        if (!decision.allowed) {
          // Nothing is sent: the item stays queued, with the gate's reason, until the gate is asked again.
          outbox.release(item.objectId, { code: 'gate', message: `gate: ${decision.reason}` }, this.o.gateRecheckMs);
          logger.info({ object: item.objectId, reason: decision.reason }, 'upload held by the gate');
          continue;
        }
        outbox.markUploading(item.objectId);
        this.lastAttemptAt = now;
        this.launch(item);
      }
    } catch (error) {
      logger.error({ err: error }, 'uplink scheduler failed; retrying shortly');
      this.timer = setTimeout(() => this.pump(), 1000);
      return;
    }
    if (this.inFlight.size < this.o.concurrency) {
      const now = this.o.now();
      let at = outbox.nextWakeAt() ?? now + MAX_IDLE_MS;
      if (this.inFlight.size === 0 && outbox.nextBackingOff() !== undefined) at = Math.min(at, this.lastAttemptAt + this.o.probeIntervalMs);
      at = Math.max(at, this.holdUntil);
      this.timer = setTimeout(() => this.pump(), Math.min(MAX_IDLE_MS, Math.max(0, at - now)));
    }
  }

  /**
   * The wall clock stepped (NTP, a person): every time this uploader scheduled moves with it, so what was
   * due in 30 s is still due in 30 s, not an hour later (a step back) or at once (a step forward).
   */
  private followClockStep(step: { stepMs: number; moved: number }): void {
    if (this.holdUntil > 0) this.holdUntil += step.stepMs;
    this.lastAttemptAt += step.stepMs;
    this.o.logger.warn({ stepMs: step.stepMs, moved: step.moved }, 'the wall clock stepped; upload schedule moved with it');
  }

  private launch(item: OutboxItem): void {
    const controller = new AbortController();
    const done = this.attempt(item, controller)
      .catch((error: unknown) => this.o.logger.error({ err: error, object: item.objectId }, 'uplink bookkeeping failed'))
      .finally(() => {
        this.inFlight.delete(item.objectId);
        this.pump();
      });
    this.inFlight.set(item.objectId, { controller, done });
  }

  private async attempt(item: OutboxItem, controller: AbortController): Promise<void> {
    const { outbox, logger } = this.o;
    const started = performance.now();
    const outcome = await this.put(item, controller);
    const log = { object: item.objectId, kind: item.kind, ms: Math.round(performance.now() - started) };
    const tell = (result: UploadReport['result'], error?: { code: string; message: string }) =>
      this.o.onOutcome?.({ objectId: item.objectId, kind: item.kind, bytes: item.bytes, ms: log.ms, result, ...(error === undefined ? {} : { code: error.code, message: error.message }) });
    switch (outcome.kind) {
      case 'uploaded': {
        outbox.markUploaded(item.objectId);
        logger.info({ ...log, bytes: item.bytes }, 'object uploaded');
        // The endpoint answers again: what was backing off is due now (not before a pause the server asked for).
        const expedited = outbox.expediteQueued(Math.max(this.o.now(), this.holdUntil));
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
        const backoff = backoffDelay(attempts, this.o.random, this.o.backoffBaseMs, this.o.backoffCapMs);
        const retryAfter = Math.min(outcome.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
        const delay = Math.max(backoff, retryAfter);
        // Retry-After speaks for the server, not for this object: hold every request until then.
        if (retryAfter > 0) this.holdUntil = Math.max(this.holdUntil, this.o.now() + retryAfter);
        outbox.retryLater(item.objectId, outcome.error, delay);
        logger.warn({ ...log, code: outcome.error.code, reason: outcome.error.message, attempts, retryInMs: delay }, 'upload failed; will retry');
        tell('retry', outcome.error);
        return;
      }
      default:
        outcome satisfies never;
    }
  }

  /** One PUT; never throws: every way it can end is an outcome. */
  private async put(item: OutboxItem, controller: AbortController): Promise<UploadOutcome> {
    let file: ReadStream | undefined;
    let body: Readable | undefined;
    const limitMs = this.o.requestTimeoutMs;
    const limits = new AbortController();
    let idleTimer: NodeJS.Timeout | undefined;
    let answerTimer: NodeJS.Timeout | undefined;
    /** Progress: the idle limit starts again. */
    const touch = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => limits.abort(new RequestTimeout(`request timed out (no progress for ${limitMs} ms)`)), limitMs);
    };
    try {
      // The size comes from the open file, not the outbox row: Content-Length must be what is sent.
      const handle = await open(item.path, 'r').catch((error: unknown) => {
        throw new LocalFileError(error);
      });
      const { size } = await handle.stat();
      file = createReadStream('', { fd: handle, highWaterMark: 64 * 1024 });
      body = file;
      // Each chunk fetch takes from the body is progress (a stalled socket stops it taking any).
      const progress = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          touch();
          callback(null, chunk);
        },
      });
      const stages: Readable[] = [file];
      if (this.bucket !== undefined) stages.push(new Throttle(this.bucket));
      stages.push(progress);
      // pipeline passes a read error on to the last stage (and so to fetch); the outcome is fetch's.
      pipeline(stages).catch(() => undefined);
      body = progress;
      if (controller.signal.aborted) throw controller.signal.reason;
      touch();
      const signal = AbortSignal.any([controller.signal, limits.signal]);
      const response = await fetch(objectUrl(this.o.endpoint, this.o.hubPseudonym, item.objectId), {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${this.token ?? ''}`,
          'content-type': 'application/octet-stream',
          'content-length': String(size),
        },
        body,
        duplex: 'half',
        redirect: 'manual',
        signal,
      });
      touch();
      answerTimer = setTimeout(() => limits.abort(new RequestTimeout(`response body not complete within ${limitMs} ms`)), limitMs);
      const text = await readLimited(response.body, undefined, touch);
      return classifyResponse(response, text, { objectId: item.objectId, bytes: size }, this.o.now());
    } catch (error) {
      return this.failure(error, controller, limits.signal);
    } finally {
      clearTimeout(idleTimer);
      clearTimeout(answerTimer);
      body?.destroy();
      file?.destroy();
    }
  }

  private failure(error: unknown, controller: AbortController, limits: AbortSignal): UploadOutcome {
    if (controller.signal.aborted) {
      const reason: unknown = controller.signal.reason;
      return {
        kind: 'retry',
        error: reason instanceof CamveilError ? reason : new CamveilError('CAMVEIL_E_UPLOAD_ABORTED', 'upload aborted', { where: 'uplink' }),
      };
    }
    if (error instanceof LocalFileError) {
      // Retrying cannot bring the file back (retention or local-only mode removed it): failed, for good.
      return { kind: 'reject', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', error.message, { where: 'uplink', cause: error.cause }) };
    }
    if (limits.aborted) {
      const reason: unknown = limits.reason;
      const why = reason instanceof RequestTimeout ? reason.message : 'request timed out';
      return { kind: 'retry', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', why, { where: 'uplink', cause: error }) };
    }
    const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const why = `network error: ${e.cause?.code ?? e.cause?.message ?? e.message ?? String(error)}`;
    return { kind: 'retry', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', why, { where: 'uplink', cause: error }) };
  }
}

/** The object's file could not be opened. */
class LocalFileError extends Error {
  constructor(cause: unknown) {
    super(`local object file cannot be opened (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, { cause });
  }
}

/** The bearer token, trimmed; the message names the file and never shows its content. */
export function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `uplink token file ${file} cannot be read (${code})`, { where: file, cause: error });
  }
  if (token === '' || /\s/.test(token)) {
    throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `uplink token file ${file} must hold one token on one line`, { where: file });
  }
  return token;
}
