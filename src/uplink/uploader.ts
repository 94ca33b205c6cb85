import { createReadStream, readFileSync, type ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
   * Time limit for one request, body included. With a bandwidth cap the time the cap itself needs
   * (bytes / cap) is added, so a large clip on a slow cap is not cut off. Default 120 s.
   */
  requestTimeoutMs?: number;
  /** Backoff of retried attempts: full jitter up to min(cap, base·2^(n−1)). Defaults 1 s and 5 min. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** How long an item the gate refused waits before the gate is asked again (default 60 s; kick() does not shorten it). */
  gateRecheckMs?: number;
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

  constructor(options: UploaderOptions) {
    this.o = {
      concurrency: 1,
      requestTimeoutMs: 120_000,
      backoffBaseMs: 1000,
      backoffCapMs: 300_000,
      gateRecheckMs: 60_000,
      now: Date.now,
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
      while (this.inFlight.size < this.o.concurrency) {
        const item = outbox.nextDue(this.o.now());
        if (item === undefined) break;
        const decision = gate.mayUpload({ objectId: item.objectId, kind: item.kind, ...(item.cameraId === undefined ? {} : { cameraId: item.cameraId }) });
        if (!decision.allowed) {
          // Nothing is sent: the item stays queued, with the gate's reason, until the gate is asked again.
          outbox.release(item.objectId, { code: 'gate', message: `gate: ${decision.reason}` }, this.o.gateRecheckMs);
          logger.info({ object: item.objectId, reason: decision.reason }, 'upload held by the gate');
          continue;
        }
        outbox.markUploading(item.objectId);
        this.launch(item);
      }
    } catch (error) {
      logger.error({ err: error }, 'uplink scheduler failed; retrying shortly');
      this.timer = setTimeout(() => this.pump(), 1000);
      return;
    }
    if (this.inFlight.size < this.o.concurrency) {
      const wake = outbox.nextWakeAt();
      const delay = wake === null ? MAX_IDLE_MS : Math.min(MAX_IDLE_MS, Math.max(0, wake - this.o.now()));
      this.timer = setTimeout(() => this.pump(), delay);
    }
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
      case 'uploaded':
        outbox.markUploaded(item.objectId);
        logger.info({ ...log, bytes: item.bytes }, 'object uploaded');
        tell('uploaded');
        return;
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
        const delay = Math.max(backoff, Math.min(outcome.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
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
    try {
      // The size comes from the open file, not the outbox row: Content-Length must be what is sent.
      const handle = await open(item.path, 'r').catch((error: unknown) => {
        throw new LocalFileError(error);
      });
      const { size } = await handle.stat();
      file = createReadStream('', { fd: handle, highWaterMark: 64 * 1024 });
      body = file;
      const cap = this.o.bandwidthBytesPerSecond;
      if (this.bucket !== undefined) {
        const throttle = new Throttle(this.bucket);
        // pipeline passes a read error on to the throttle (and so to fetch); the outcome is fetch's.
        pipeline(file, throttle).catch(() => undefined);
        body = throttle;
      }
      if (controller.signal.aborted) throw controller.signal.reason;
      const timeoutMs = this.o.requestTimeoutMs + (cap === undefined ? 0 : Math.ceil((size / cap) * 1000));
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = AbortSignal.any([controller.signal, timeout]);
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
      const text = await readLimited(response.body);
      return classifyResponse(response, text, { objectId: item.objectId, bytes: size }, this.o.now());
    } catch (error) {
      return this.failure(error, controller);
    } finally {
      body?.destroy();
      file?.destroy();
    }
  }

  private failure(error: unknown, controller: AbortController): UploadOutcome {
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
    const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const why =
      e.name === 'TimeoutError'
        ? 'request timed out'
        : `network error: ${e.cause?.code ?? e.cause?.message ?? e.message ?? String(error)}`;
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
