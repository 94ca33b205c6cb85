import { readFileSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { wallNow } from '../clock.js';
import { CamveilError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { hubUrl, objectUrl } from './endpoint.js';
import { classifyStoreResponse, parsePresignAnswer, UPLOADS_HEADER, uploadRequestUrl, type PresignedPut } from './presign-answer.js';
import type { DeleteResult, PutOutcome, RemoteListing, RemoteObject, RemoteObjectStore } from './remote-object-store.js';
import { classifyResponse, readLimited, serverMessage } from './response.js';
import { Throttle, TokenBucket } from './throttle.js';

export interface HttpReceiverStoreOptions {
  /** A validated endpoint (see validateEndpoint); objects go to `<endpoint>/v1/objects/<hub>/<id>`. */
  endpoint: URL;
  hubPseudonym: string;
  /** File holding the bearer token; read by open(), trimmed. */
  tokenFile: string;
  /** Bytes per second for all of this store's uploads together (one token bucket); undefined = no cap. */
  bandwidthBytesPerSecond?: number;
  /**
   * Idle time limit of one upload: it fails when the body stops being taken, or no answer comes after
   * it, for this long; a request that keeps moving is never cut off however long a large clip takes.
   * Once the answer has begun, its (small) body must arrive within this long in total, so a server
   * trickling it a byte at a time cannot hold the queue. Default 120 s.
   */
  requestTimeoutMs?: number;
  /** Time limit of one deletion or listing request (default 15 s). */
  shortRequestTimeoutMs?: number;
  /** Wall time (src/clock.ts), for Retry-After given as a date. */
  now?: () => number;
}

/** Why a request was cut by the store's own time limits. */
class RequestTimeout extends Error {
  override readonly name = 'RequestTimeout';
}

/** The receiver's listing of a hub's objects (src/receiver/server.ts). */
const listingSchema = z.array(z.object({ objectId: z.string(), bytes: z.number().int().nonnegative(), receivedAt: z.string().optional() }));


/** Where one upload's body goes, with what, and how its answer is read. */
interface PutTarget {
  url: URL;
  headers: Record<string, string>;
  classify(response: Response, text: string): PutOutcome;
}

/** Listings are small JSON: this caps what is read of one (about 10,000 objects). */
const MAX_LISTING_BYTES = 1024 * 1024;

/**
 * The HTTP receiver protocol (src/receiver/server.ts): `PUT`, `DELETE` and `GET` under
 * `<endpoint>/v1/objects/<hub>` with the hub's bearer token, over https (plain http only to loopback, as
 * validateEndpoint allows), redirects refused. An upload streams its body (never read whole) through the
 * bandwidth cap; a 2xx must carry the receipt for this id and size; 408, 429 and 5xx are retried and their
 * Retry-After reported; other statuses refuse for good.
 *
 * Presigned uploads (docs/receiver.md): a receiver that presigns says so on every answer
 * (`camveil-uploads: presign`). Once the store has seen that, each upload first asks
 * `POST <endpoint>/v1/uploads/<hub>/<id>` `{"bytes"}` and sends the body to the URL of the answer (the
 * object store) with only the answer's headers: the bearer token goes to the receiver alone, never to the
 * URL's host. Until then, and after a presign request answered 404 or 405 (the receiver was restarted
 * without presigning), uploads are today's PUT, which every receiver takes: receivers and servers that do
 * not know the extension never see a request they do not know.
 */
export class HttpReceiverStore implements RemoteObjectStore {
  readonly #o: HttpReceiverStoreOptions & { requestTimeoutMs: number; shortRequestTimeoutMs: number; now: () => number };
  readonly #bucket: TokenBucket | undefined;
  #token: string | undefined;
  /** The receiver said it presigns (UPLOADS_HEADER on an answer of its own). */
  #presigns = false;

  constructor(options: HttpReceiverStoreOptions) {
    this.#o = { requestTimeoutMs: 120_000, shortRequestTimeoutMs: 15_000, now: wallNow, ...options };
    this.#bucket = options.bandwidthBytesPerSecond === undefined ? undefined : new TokenBucket(options.bandwidthBytesPerSecond);
  }

  get description(): { type: string; origin: string } {
    return { type: 'http', origin: redactUrl(this.#o.endpoint.origin) };
  }

  /** @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` naming the token file (never its content). */
  open(): void {
    this.#token = readToken(this.#o.tokenFile);
  }

  #authorization(): string {
    if (this.#token === undefined) this.open();
    return `Bearer ${this.#token ?? ''}`;
  }

  async put(object: RemoteObject, source: Readable | Uint8Array, signal: AbortSignal): Promise<PutOutcome> {
    const file = source instanceof Uint8Array ? Readable.from([source]) : source;
    try {
      const authorization = this.#authorization();
      if (signal.aborted) throw signal.reason;
      const asked = await this.#askPresign(object, authorization, signal);
      if ('kind' in asked) return asked;
      const target: PutTarget =
        asked.presigned === undefined
          ? {
              url: objectUrl(this.#o.endpoint, this.#o.hubPseudonym, object.objectId),
              headers: { authorization, 'content-type': 'application/octet-stream', 'content-length': String(object.bytes) },
              classify: (response, text) => {
                this.#heard(response);
                return classifyResponse(response, text, object, this.#o.now());
              },
            }
          : {
              // The presigned host gets the answer's headers and nothing else: never the bearer token.
              url: asked.presigned.url,
              headers: asked.presigned.headers,
              classify: (response, text) => classifyStoreResponse(response, text, this.#o.now()),
            };
      return await this.#send(target, file, signal);
    } catch (error) {
      return putFailure(error, signal, new AbortController().signal);
    } finally {
      file.destroy();
    }
  }

  /**
   * Asks the receiver for a presigned PUT: `{presigned}` to follow, `{presigned: undefined}` for a plain
   * PUT (the receiver does not presign), or the outcome of a failed ask.
   */
  async #askPresign(object: RemoteObject, authorization: string, signal: AbortSignal): Promise<{ presigned: PresignedPut | undefined } | PutOutcome> {
    if (!this.#presigns) return { presigned: undefined };
    const timeout = AbortSignal.timeout(this.#o.shortRequestTimeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(uploadRequestUrl(this.#o.endpoint, this.#o.hubPseudonym, object.objectId), {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: JSON.stringify({ bytes: object.bytes }),
        redirect: 'manual',
        signal: AbortSignal.any([signal, timeout]),
      });
      text = await readLimited(response.body, 16 * 1024);
    } catch (error) {
      return putFailure(error, signal, timeout);
    }
    if (response.status === 404 || response.status === 405) {
      this.#presigns = false;
      return { presigned: undefined };
    }
    if (response.status < 200 || response.status >= 300) return classifyResponse(response, text, object, this.#o.now());
    try {
      return { presigned: parsePresignAnswer(text, object.bytes) };
    } catch (error) {
      return { kind: 'retry', error: error instanceof CamveilError ? error : new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', 'presign answer not usable', { where: 'uplink' }) };
    }
  }

  /** Streams the body to `target` under the idle and answer time limits, through the bandwidth cap. */
  async #send(target: PutTarget, file: Readable, signal: AbortSignal): Promise<PutOutcome> {
    const limitMs = this.#o.requestTimeoutMs;
    const limits = new AbortController();
    let idleTimer: NodeJS.Timeout | undefined;
    let answerTimer: NodeJS.Timeout | undefined;
    /** Progress: the idle limit starts again. */
    const touch = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => limits.abort(new RequestTimeout(`request timed out (no progress for ${limitMs} ms)`)), limitMs);
    };
    let body: Readable = file;
    try {
      // Each chunk fetch takes from the body is progress (a stalled socket stops it taking any).
      const progress = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          touch();
          callback(null, chunk);
        },
      });
      const stages: Readable[] = [file];
      if (this.#bucket !== undefined) stages.push(new Throttle(this.#bucket));
      stages.push(progress);
      // pipeline passes a read error on to the last stage (and so to fetch); the outcome is fetch's.
      pipeline(stages).catch(() => undefined);
      body = progress;
      if (signal.aborted) throw signal.reason;
      touch();
      const response = await fetch(target.url, {
        method: 'PUT',
        headers: target.headers,
        body,
        duplex: 'half',
        redirect: 'manual',
        signal: AbortSignal.any([signal, limits.signal]),
      });
      touch();
      answerTimer = setTimeout(() => limits.abort(new RequestTimeout(`response body not complete within ${limitMs} ms`)), limitMs);
      const text = await readLimited(response.body, undefined, touch);
      return target.classify(response, text);
    } catch (error) {
      return putFailure(error, signal, limits.signal);
    } finally {
      clearTimeout(idleTimer);
      clearTimeout(answerTimer);
      body.destroy();
    }
  }

  async delete(objectIds: readonly string[], signal?: AbortSignal): Promise<DeleteResult> {
    const result: DeleteResult = { deleted: [], failed: [] };
    let authorization: string;
    try {
      authorization = this.#authorization();
    } catch (error) {
      const e = error instanceof CamveilError ? error : new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', 'uplink token unreadable', { where: 'uplink', cause: error });
      result.failed = objectIds.map((objectId) => ({ objectId, error: e }));
      return result;
    }
    for (const objectId of objectIds) {
      try {
        const res = await fetch(objectUrl(this.#o.endpoint, this.#o.hubPseudonym, objectId), {
          method: 'DELETE',
          headers: { authorization },
          redirect: 'manual',
          signal: this.#shortSignal(signal),
        });
        await res.body?.cancel();
        this.#heard(res);
        if (res.ok || res.status === 404) result.deleted.push(objectId);
        else result.failed.push({ objectId, error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `HTTP ${res.status}`, { where: 'uplink' }) });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        result.failed.push({ objectId, error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', message, { where: 'uplink', cause: error }) });
      }
    }
    return result;
  }

  async list(signal?: AbortSignal): Promise<RemoteListing[]> {
    const authorization = this.#authorization();
    let status: number;
    let text: string;
    try {
      const res = await fetch(hubUrl(this.#o.endpoint, this.#o.hubPseudonym), { headers: { authorization }, redirect: 'manual', signal: this.#shortSignal(signal) });
      status = res.status;
      this.#heard(res);
      text = await readLimited(res.body, MAX_LISTING_BYTES);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `listing failed: ${message}`, { where: 'uplink', cause: error });
    }
    if (status < 200 || status >= 300) {
      const message = serverMessage(text);
      throw new CamveilError('CAMVEIL_E_UPLOAD_FAILED', `listing: HTTP ${status}${message === '' ? '' : `: ${message}`}`, { where: 'uplink' });
    }
    let parsed;
    try {
      parsed = listingSchema.safeParse(JSON.parse(text));
    } catch (error) {
      throw new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `listing: HTTP ${status} with a body that is not JSON`, { where: 'uplink', cause: error });
    }
    if (!parsed.success) throw new CamveilError('CAMVEIL_E_CLOUD_PROTOCOL', `listing: HTTP ${status} body is not a listing`, { where: 'uplink' });
    return parsed.data.map((o) => ({ objectId: o.objectId, bytes: o.bytes, ...(o.receivedAt === undefined ? {} : { storedAt: o.receivedAt }) }));
  }

  /** Notes whether an answer of the receiver (never of the object store) says it presigns. */
  #heard(response: Response): void {
    this.#presigns = (response.headers.get(UPLOADS_HEADER) ?? '').split(',').some((v) => v.trim().toLowerCase() === 'presign');
  }

  #shortSignal(signal: AbortSignal | undefined): AbortSignal {
    const timeout = AbortSignal.timeout(this.#o.shortRequestTimeoutMs);
    return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  }
}

/** How an upload that threw ended: the caller's abort, the store's own time limits, or the network. */
function putFailure(error: unknown, signal: AbortSignal, limits: AbortSignal): PutOutcome {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    return {
      kind: 'retry',
      error: reason instanceof CamveilError ? reason : new CamveilError('CAMVEIL_E_UPLOAD_ABORTED', 'upload aborted', { where: 'uplink' }),
    };
  }
  if (error instanceof CamveilError) return { kind: 'retry', error };
  if (limits.aborted) {
    const reason: unknown = limits.reason;
    const why = reason instanceof RequestTimeout ? reason.message : 'request timed out';
    return { kind: 'retry', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', why, { where: 'uplink', cause: error }) };
  }
  const e = error as { message?: string; cause?: { code?: string; message?: string } };
  const why = `network error: ${e.cause?.code ?? e.cause?.message ?? e.message ?? String(error)}`;
  return { kind: 'retry', error: new CamveilError('CAMVEIL_E_UPLOAD_FAILED', why, { where: 'uplink', cause: error }) };
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
