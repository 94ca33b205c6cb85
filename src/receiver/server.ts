import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { OBJECT_ID_PATTERN } from '../crypto/manifest.js';
import { silentLogger, type Logger } from '../log.js';
import { UPLOADS_HEADER } from '../uplink/presign-answer.js';
import { Throttle, TokenBucket } from '../uplink/throttle.js';
import { ageGated, type GateState } from './age-gate.js';
import { DirectoryStorage } from './directory-storage.js';
import { HttpError } from './http-error.js';
import type { ReceiverStorage } from './storage.js';
import { checkToken, HUB_PSEUDONYM_PATTERN, type TokenRole, type TokenTable } from './tokens.js';

export { HUB_PSEUDONYM_PATTERN };

/** Default largest body accepted: 2 GiB, well above a long 1080p clip. */
export const DEFAULT_MAX_BODY_BYTES = 2 * 1024 ** 3;

export interface ReceiverOptions {
  /** Where objects are kept, as `<dir>/<hub>/<objectId>.age`; give this or `storage`. */
  dir?: string;
  /** Where objects are kept (an S3 bucket: s3-storage.ts); give this or `dir`. Closed by close(). */
  storage?: ReceiverStorage;
  /**
   * Answers `POST /v1/uploads/<hub>/<id>` with a presigned PUT valid this many seconds (1 to 3600); needs a
   * storage that can presign. Plain PUTs are still accepted (hubs that do not ask).
   */
  presignExpirySeconds?: number;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /**
   * Per-hub tokens (see readTokensFile): every request must carry a token of the hub in its path, an
   * upload token for PUT and DELETE, an upload or read token for GET. Preferred over `token`.
   */
  tokens?: TokenTable;
  /**
   * One token for every hub: whoever holds it may act on any hub's objects. For tests and the single-hub
   * demo only; not accepted together with `tokens`.
   */
  token?: string;
  logger?: Logger;
  maxBodyBytes?: number;
  /** Reads request bodies no faster than this (bytes/s): a slow cloud, for tests. */
  readBytesPerSecond?: number;
}

export interface ReceivedObject {
  hub: string;
  objectId: string;
  bytes: number;
}

export interface Receiver {
  url: string;
  port: number;
  close(): Promise<void>;
  /** Every PUT this receiver stored completely, in order (a repeated PUT of one id appears twice); presigned uploads never pass through it. */
  received(): ReceivedObject[];
  /** Replaces the per-hub tokens (a reloaded tokens file); requests already authorised go on. */
  setTokens(tokens: TokenTable): void;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** `POST /v1/uploads/<hub>/<id>`'s body: the size the hub will send. Unknown keys are refused. */
const uploadRequestSchema = z.strictObject({ bytes: z.number().int().nonnegative() });

/** Upload requests are tiny JSON: this caps what is read of one. */
const MAX_UPLOAD_REQUEST_BYTES = 1024;

/**
 * The reference cloud receiver: stores what hubs upload, checks that it is age ciphertext, and never
 * holds a key. `PUT /v1/objects/<hub>/<objectId>` stores a body that begins with a valid age header
 * (415 otherwise; 413 above the size limit) and answers `200 {"objectId","bytes"}`; a repeated PUT
 * replaces the object atomically. `GET /v1/objects/<hub>` lists `[{objectId, bytes, receivedAt}]`,
 * `GET /v1/objects/<hub>/<objectId>` returns the ciphertext, `DELETE` removes it. With per-hub tokens
 * every request's token must belong to the hub in its path (401 without a known token, 403 with another
 * hub's). With presigning, `POST /v1/uploads/<hub>/<objectId>` `{"bytes"}` answers
 * `200 {"url","method":"PUT","headers","expiresAt"}` (404 without presigning, as before the extension).
 * Errors are `{"error":{"code","message"}}`. Objects live in a directory or an S3 bucket (storage.ts).
 */
export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  const logger = options.logger ?? silentLogger();
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (options.token !== undefined && options.tokens !== undefined) throw new Error('receiver: give tokens or token, not both');
  if ((options.dir === undefined) === (options.storage === undefined)) throw new Error('receiver: give dir or storage, not both or neither');
  const presignSeconds = options.presignExpirySeconds;
  if (presignSeconds !== undefined && (!Number.isInteger(presignSeconds) || presignSeconds < 1 || presignSeconds > 3600)) {
    throw new Error('receiver: presignExpirySeconds must be a whole number from 1 to 3600');
  }
  let storage: ReceiverStorage;
  if (options.dir !== undefined) {
    const directory = new DirectoryStorage(options.dir);
    await directory.open();
    storage = directory;
  } else storage = options.storage as ReceiverStorage;
  const presign = presignSeconds === undefined ? undefined : storage.presignPut?.bind(storage);
  if (presignSeconds !== undefined && presign === undefined) throw new Error(`receiver: ${storage.description} cannot presign uploads`);
  const shared = options.token === undefined ? undefined : digest(`Bearer ${options.token}`);
  let tokens = options.tokens;
  const bucket = options.readBytesPerSecond === undefined ? undefined : new TokenBucket(options.readBytesPerSecond);
  const received: ReceivedObject[] = [];

  /** Throws 401 or 403 unless the request's token may act as `role` on `hub`. */
  function authorise(req: IncomingMessage, hub: string, role: TokenRole): void {
    let verdict: 'allowed' | 'unauthenticated' | 'forbidden' = 'allowed';
    if (tokens !== undefined) verdict = checkToken(tokens, req.headers.authorization, hub, role);
    // Digests compare in constant time whatever the lengths.
    else if (shared !== undefined && !timingSafeEqual(digest(req.headers.authorization ?? ''), shared)) verdict = 'unauthenticated';
    if (verdict === 'unauthenticated') throw new HttpError(401, 'unauthorized', 'missing or wrong bearer token');
    if (verdict === 'forbidden') throw new HttpError(403, 'forbidden', 'this token may not act on this hub');
  }

  async function putObject(req: IncomingMessage, res: ServerResponse, hub: string, objectId: string): Promise<void> {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBody) {
      throw new HttpError(413, 'payload_too_large', `body of ${declared} bytes is over the limit of ${maxBody}`);
    }
    let source: Readable = req;
    if (bucket !== undefined) {
      const throttle = new Throttle(bucket);
      pipeline(req, throttle).catch(() => undefined);
      source = throttle;
    }
    const gate: GateState = { bytes: 0 };
    const body = Readable.from(ageGated(source as AsyncIterable<Buffer>, maxBody, gate), { objectMode: false });
    try {
      await storage.put(hub, objectId, body);
    } catch (error) {
      // The storage may wrap the gate's refusal in its own error (the SDK does): answer with the gate's.
      throw gate.refusal ?? error;
    } finally {
      body.destroy();
    }
    received.push({ hub, objectId, bytes: gate.bytes });
    logger.info({ hub, object: objectId, bytes: gate.bytes }, 'object stored');
    sendJson(res, 200, { objectId, bytes: gate.bytes });
  }

  /** The presign extension: a short-lived PUT for exactly this key and size, straight to the store. */
  async function presignUpload(req: IncomingMessage, res: ServerResponse, hub: string, objectId: string): Promise<void> {
    if (presign === undefined || presignSeconds === undefined) throw new HttpError(404, 'not_found', 'no such resource');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_UPLOAD_REQUEST_BYTES) throw new HttpError(413, 'payload_too_large', `upload request is over ${MAX_UPLOAD_REQUEST_BYTES} bytes`);
      chunks.push(chunk);
    }
    let parsed;
    try {
      parsed = uploadRequestSchema.safeParse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch {
      throw new HttpError(400, 'bad_request', 'upload request must be JSON {"bytes": <size>}');
    }
    if (!parsed.success) throw new HttpError(400, 'bad_request', 'upload request must be JSON {"bytes": <size>}');
    const { bytes } = parsed.data;
    if (bytes > maxBody) throw new HttpError(413, 'payload_too_large', `body of ${bytes} bytes is over the limit of ${maxBody}`);
    const answer = await presign(hub, objectId, bytes, presignSeconds);
    // Never the URL: its query holds the signature.
    logger.info({ hub, object: objectId, bytes }, 'upload presigned');
    sendJson(res, 200, answer, { 'cache-control': 'no-store' });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://receiver').pathname;
    const parts = path.split('/').slice(1);
    const uploads = parts[1] === 'uploads' && presign !== undefined;
    if (parts[0] !== 'v1' || !(parts[1] === 'objects' || uploads) || parts.length < 3 || parts.length > 4 || (uploads && parts.length !== 4)) {
      throw new HttpError(404, 'not_found', 'no such resource');
    }
    const allowed = uploads ? ['POST'] : parts.length === 4 ? ['PUT', 'GET', 'DELETE'] : ['GET'];
    if (!allowed.includes(req.method ?? '')) throw new HttpError(405, 'method_not_allowed', `use ${allowed.join(' or ')} here`);
    const hub = parts[2] ?? '';
    // The token is checked against the hub named in the path before anything else is looked at.
    authorise(req, hub, req.method === 'GET' ? 'read' : 'upload');
    if (!HUB_PSEUDONYM_PATTERN.test(hub)) throw new HttpError(400, 'bad_request', 'hub must be a hub pseudonym (hub_ and 16 base32 characters)');
    if (parts.length === 3) return listObjects(res, hub);
    const objectId = parts[3] ?? '';
    if (!OBJECT_ID_PATTERN.test(objectId)) throw new HttpError(400, 'bad_request', 'object id must be 26 lower-case base32 characters');
    if (uploads) return presignUpload(req, res, hub, objectId);
    if (req.method === 'DELETE') return deleteObject(res, hub, objectId);
    if (req.method === 'GET') return getObject(res, hub, objectId);
    return putObject(req, res, hub, objectId);
  }

  async function listObjects(res: ServerResponse, hub: string): Promise<void> {
    sendJson(res, 200, await storage.list(hub));
  }

  /** The object's ciphertext as stored (for the household app, which alone can open it). */
  async function getObject(res: ServerResponse, hub: string, objectId: string): Promise<void> {
    const found = await storage.get(hub, objectId);
    if (found === undefined) throw new HttpError(404, 'not_found', 'no such object');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': found.bytes });
    await pipeline(found.body, res);
  }

  /** A deletion request: the object goes; 404 when it was not (or no longer) held. */
  async function deleteObject(res: ServerResponse, hub: string, objectId: string): Promise<void> {
    if (!(await storage.delete(hub, objectId))) throw new HttpError(404, 'not_found', 'no such object');
    const i = received.findIndex((r) => r.hub === hub && r.objectId === objectId);
    if (i >= 0) received.splice(i, 1);
    sendJson(res, 200, { objectId, deleted: true });
  }

  const server = createServer((req, res) => {
    // Every answer tells hubs that this receiver presigns (the hub asks only then: docs/receiver.md).
    if (presign !== undefined) res.setHeader(UPLOADS_HEADER, 'presign');
    handle(req, res).catch((error: unknown) => {
      if (req.destroyed && !(error instanceof HttpError)) return; // The client went away mid-body.
      const e = error instanceof HttpError ? error : new HttpError(500, 'internal', 'internal error');
      if (!(error instanceof HttpError)) logger.error({ err: error }, 'receiver request failed');
      // After an early refusal the rest of the body is not wanted: close rather than read up to 2 GiB.
      const close = !req.complete && e.status === 413;
      sendJson(res, e.status, { error: { code: e.code, message: e.message } }, close ? { connection: 'close' } : {});
      if (!req.complete) req.resume();
    });
  });
  // Large clips over slow uplinks take longer than Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port, address, family } = server.address() as AddressInfo;
  const url = `http://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
  logger.info({ port, storage: storage.description, presign: presignSeconds !== undefined }, 'receiver listening');
  return {
    url,
    port,
    received: () => [...received],
    setTokens: (next) => {
      if (tokens === undefined) throw new Error('receiver: started without per-hub tokens');
      tokens = next;
    },
    close: async () => {
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      });
      await storage.close();
    },
  };
}
