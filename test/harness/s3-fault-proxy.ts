import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, type Transform } from 'node:stream';
import { Throttle, TokenBucket } from '../../src/uplink/throttle.js';

/**
 * A plain HTTP proxy on loopback in front of the S3 peer (test/harness/swift.ts) that can answer the first
 * requests itself, as a busy S3 store does: `503 SlowDown` with S3's XML error body and a Retry-After.
 * Requests it lets through go to the peer unchanged (the signature covers the Host header, which is kept).
 */
export interface S3FaultProxy {
  endpoint: string;
  /** Requests seen, in order: method, path and what the proxy did. */
  readonly seen: Array<{ method: string; path: string; answered: 'slowdown' | 'stalled' | 'forwarded' }>;
  /** Request body bytes passed on to the peer so far. */
  bytesForwarded(): number;
  /** Requests whose body is still coming (or being held back by the read rate). */
  openRequests(): number;
  /** Reads request bodies no faster than this (a slow link); undefined: as fast as they come. */
  readBytesPerSecond(rate: number | undefined): void;
  /** The next `n` requests that `match` are answered 503 SlowDown (Retry-After `retryAfterSeconds` when given). */
  slowDown(n: number, options?: { match?: (method: string, path: string) => boolean; retryAfterSeconds?: number }): void;
  /** The next `n` requests that `match` are read whole and never answered (a store that hangs). */
  stall(n: number, match?: (method: string, path: string) => boolean): void;
  close(): Promise<void>;
}

const SLOW_DOWN_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>';

export async function startS3FaultProxy(upstreamPort: number): Promise<S3FaultProxy> {
  let remaining = 0;
  let match: (method: string, path: string) => boolean = () => true;
  let retryAfter: number | undefined;
  let forwarded = 0;
  let stalls = 0;
  let open = 0;
  let readRate: number | undefined;
  let stallMatch: (method: string, path: string) => boolean = () => true;
  const seen: S3FaultProxy['seen'] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    open++;
    req.once('close', () => open--);
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    if (stalls > 0 && stallMatch(method, path)) {
      stalls--;
      seen.push({ method, path, answered: 'stalled' });
      req.resume();
      return;
    }
    if (remaining > 0 && match(method, path)) {
      remaining--;
      seen.push({ method, path, answered: 'slowdown' });
      // The body the client sends is read and dropped, so it sees the answer rather than a reset.
      req.resume();
      req.on('end', () => {
        res.writeHead(503, { 'content-type': 'application/xml', ...(retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) }), connection: 'close' });
        res.end(method === 'HEAD' ? undefined : SLOW_DOWN_XML);
      });
      return;
    }
    seen.push({ method, path, answered: 'forwarded' });
    const upstream = request({ host: '127.0.0.1', port: upstreamPort, method, path, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.on('error', () => upstream.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    const pace: Transform = readRate === undefined ? new PassThrough() : new Throttle(new TokenBucket(readRate));
    pace.on('data', (chunk: Buffer) => (forwarded += chunk.length));
    req.on('error', () => pace.destroy());
    req.pipe(pace).pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    bytesForwarded: () => forwarded,
    openRequests: () => open,
    readBytesPerSecond(rate) {
      readRate = rate;
    },
    slowDown(n, options = {}) {
      remaining = n;
      match = options.match ?? (() => true);
      retryAfter = options.retryAfterSeconds;
    },
    stall(n, match = () => true) {
      stalls = n;
      stallMatch = match;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
