import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request that went through the proxy, with the answer it got. */
export interface CapturedExchange {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** 502 when the target could not be reached. */
  status: number;
  responseBody: Buffer;
}

export interface CapturingProxy {
  /** `http://127.0.0.1:port` */
  url: string;
  port: number;
  /** Every exchange so far, in the order requests completed. */
  exchanges(): CapturedExchange[];
  close(): Promise<void>;
}

/**
 * A tiny reverse proxy for tests: forwards each request to `target` (an `http://host:port` origin) and keeps a
 * copy of every request body and response in memory, so a test can scan everything that went over HTTP.
 * Bodies are buffered whole before they are forwarded (fine for test-sized objects).
 */
export async function startCapturingProxy(options: { target: string; port?: number }): Promise<CapturingProxy> {
  const target = new URL(options.target);
  const captured: CapturedExchange[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const record = (status: number, responseBody: Buffer): void => {
        captured.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, status, responseBody });
      };
      const headers = { ...req.headers, host: target.host };
      const upstream = http.request(
        { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (c: Buffer) => parts.push(c));
          answer.on('end', () => {
            const responseBody = Buffer.concat(parts);
            record(answer.statusCode ?? 0, responseBody);
            const out = { ...answer.headers };
            delete out['transfer-encoding'];
            out['content-length'] = String(responseBody.length);
            res.writeHead(answer.statusCode ?? 502, out);
            res.end(responseBody);
          });
        },
      );
      upstream.on('error', (error) => {
        const responseBody = Buffer.from(JSON.stringify({ error: { code: 'bad_gateway', message: String(error) } }));
        record(502, responseBody);
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json', 'content-length': responseBody.length });
        res.end(responseBody);
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    exchanges: () => [...captured],
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}
