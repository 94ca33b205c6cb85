import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { headerEnd, MAX_HEADER_SIZE } from '../crypto/age-header.js';
import { OBJECT_ID_PATTERN } from '../crypto/manifest.js';
import { silentLogger, type Logger } from '../log.js';
import { Throttle, TokenBucket } from '../uplink/throttle.js';
import { ageHeaderProblem, mayBeginAgeHeader } from './age-syntax.js';
import { checkToken, HUB_PSEUDONYM_PATTERN, type TokenRole, type TokenTable } from './tokens.js';

export { HUB_PSEUDONYM_PATTERN };

/** Default largest body accepted: 2 GiB, well above a long 1080p clip. */
export const DEFAULT_MAX_BODY_BYTES = 2 * 1024 ** 3;

export interface ReceiverOptions {
  /** Where objects are kept, as `<dir>/<hub>/<objectId>.age`. */
  dir: string;
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
  /** Every PUT stored completely, in order (a repeated PUT of one id appears twice). */
  received(): ReceivedObject[];
  /** Replaces the per-hub tokens (a reloaded tokens file); requests already authorised go on. */
  setTokens(tokens: TokenTable): void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
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

/**
 * The reference cloud receiver: stores what hubs upload, checks that it is age ciphertext, and never
 * holds a key. `PUT /v1/objects/<hub>/<objectId>` stores a body that begins with a valid age header
 * (415 otherwise; 413 above the size limit) and answers `200 {"objectId","bytes"}`; a repeated PUT
 * replaces the object atomically. `GET /v1/objects/<hub>` lists `[{objectId, bytes, receivedAt}]`,
 * `GET /v1/objects/<hub>/<objectId>` returns the ciphertext, `DELETE` removes it. With per-hub tokens
 * every request's token must belong to the hub in its path (401 without a known token, 403 with another
 * hub's). Errors are `{"error":{"code","message"}}`.
 */
export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  const logger = options.logger ?? silentLogger();
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (options.token !== undefined && options.tokens !== undefined) throw new Error('receiver: give tokens or token, not both');
  const shared = options.token === undefined ? undefined : digest(`Bearer ${options.token}`);
  let tokens = options.tokens;
  const bucket = options.readBytesPerSecond === undefined ? undefined : new TokenBucket(options.readBytesPerSecond);
  const received: ReceivedObject[] = [];
  await mkdir(options.dir, { recursive: true });

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
    const hubDir = join(options.dir, hub);
    // A unique temporary name: two PUTs of one id at once must not write into the same file.
    const tmp = join(hubDir, `${objectId}.age.${randomBytes(6).toString('hex')}.tmp`);
    let source: Readable = req;
    if (bucket !== undefined) {
      const throttle = new Throttle(bucket);
      pipeline(req, throttle).catch(() => undefined);
      source = throttle;
    }
    let out: FileHandle | undefined;
    let head = Buffer.alloc(0);
    let total = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > maxBody) throw new HttpError(413, 'payload_too_large', `body is over the limit of ${maxBody} bytes`);
        if (out !== undefined) {
          // One awaited write per chunk: the request is read no faster than the disk takes it.
          await out.write(chunk);
          continue;
        }
        const scanFrom = head.length;
        head = Buffer.concat([head, chunk]);
        if (!mayBeginAgeHeader(head)) throw new HttpError(415, 'not_age', 'body does not begin with an age header (age-encryption.org/v1)');
        const end = headerEnd(head, scanFrom);
        if (end === -1 ? head.length > MAX_HEADER_SIZE : end > MAX_HEADER_SIZE) {
          throw new HttpError(415, 'not_age', `age header is longer than ${MAX_HEADER_SIZE} bytes`);
        }
        if (end === -1) continue;
        const problem = ageHeaderProblem(head.subarray(0, end));
        if (problem !== undefined) throw new HttpError(415, 'not_age', `age header is not valid: ${problem}`);
        await mkdir(hubDir, { recursive: true });
        out = await open(tmp, 'wx');
        await out.write(head);
        head = Buffer.alloc(0);
      }
      if (out === undefined) throw new HttpError(415, 'not_age', 'body ends before a complete age header');
      await out.close();
      out = undefined;
      await rename(tmp, join(hubDir, `${objectId}.age`));
    } catch (error) {
      if (out !== undefined) {
        await out.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
      }
      throw error;
    }
    received.push({ hub, objectId, bytes: total });
    logger.info({ hub, object: objectId, bytes: total }, 'object stored');
    sendJson(res, 200, { objectId, bytes: total });
  }

  async function listObjects(res: ServerResponse, hub: string): Promise<void> {
    const hubDir = join(options.dir, hub);
    const names = await readdir(hubDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    });
    const list: Array<{ objectId: string; bytes: number; receivedAt: string }> = [];
    for (const name of names.sort()) {
      const objectId = name.endsWith('.age') ? name.slice(0, -4) : '';
      if (!OBJECT_ID_PATTERN.test(objectId)) continue;
      const info = await stat(join(hubDir, name));
      list.push({ objectId, bytes: info.size, receivedAt: info.mtime.toISOString() });
    }
    sendJson(res, 200, list);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://receiver').pathname;
    const parts = path.split('/').slice(1);
    if (parts[0] !== 'v1' || parts[1] !== 'objects' || parts.length < 3 || parts.length > 4) {
      throw new HttpError(404, 'not_found', 'no such resource');
    }
    const allowed = parts.length === 4 ? ['PUT', 'GET', 'DELETE'] : ['GET'];
    if (!allowed.includes(req.method ?? '')) throw new HttpError(405, 'method_not_allowed', `use ${allowed.join(' or ')} here`);
    const hub = parts[2] ?? '';
    // The token is checked against the hub named in the path before anything else is looked at.
    authorise(req, hub, req.method === 'GET' ? 'read' : 'upload');
    if (!HUB_PSEUDONYM_PATTERN.test(hub)) throw new HttpError(400, 'bad_request', 'hub must be a hub pseudonym (hub_ and 16 base32 characters)');
    if (parts.length === 3) return listObjects(res, hub);
    const objectId = parts[3] ?? '';
    if (!OBJECT_ID_PATTERN.test(objectId)) throw new HttpError(400, 'bad_request', 'object id must be 26 lower-case base32 characters');
    if (req.method === 'DELETE') return deleteObject(res, hub, objectId);
    if (req.method === 'GET') return getObject(res, hub, objectId);
    return putObject(req, res, hub, objectId);
  }

  /** The object's ciphertext as stored (for the household app, which alone can open it). */
  async function getObject(res: ServerResponse, hub: string, objectId: string): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await open(join(options.dir, hub, `${objectId}.age`), 'r');
    } catch {
      throw new HttpError(404, 'not_found', 'no such object');
    }
    const { size } = await handle.stat();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    await pipeline(createReadStream('', { fd: handle }), res);
  }

  /** A deletion request: the object goes; 404 when it was not (or no longer) held. */
  async function deleteObject(res: ServerResponse, hub: string, objectId: string): Promise<void> {
    try {
      await unlink(join(options.dir, hub, `${objectId}.age`));
    } catch {
      throw new HttpError(404, 'not_found', 'no such object');
    }
    const i = received.findIndex((r) => r.hub === hub && r.objectId === objectId);
    if (i >= 0) received.splice(i, 1);
    sendJson(res, 200, { objectId, deleted: true });
  }

  const server = createServer((req, res) => {
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
  logger.info({ port }, 'receiver listening');
  return {
    url,
    port,
    received: () => [...received],
    setTokens: (next) => {
      if (tokens === undefined) throw new Error('receiver: started without per-hub tokens');
      tokens = next;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}
