import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What the hostile cloud does with one request:
 * - `pass`: forwards it to the real receiver and relays the answer;
 * - `status`: reads the body, stores nothing, answers `status` with `headers` (500, 429 + Retry-After…);
 * - `stall-answer`: forwards it (the receiver stores the object), then never answers; with
 *   `trickleMs`, sends 200 headers and half a receipt, then one more space every `trickleMs` (a body
 *   that moves but never ends);
 * - `wrong-receipt`: forwards it (stored), then answers 200 with `receipt(objectId, bytes)` instead;
 * - `close-mid-upload`: forwards `afterBytes` of the body, then cuts both connections.
 */
export type Fault =
  | { kind: 'pass' }
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  | { kind: 'stall-answer'; trickleMs?: number }
  | { kind: 'wrong-receipt'; receipt: (objectId: string, bytes: number) => unknown }
  | { kind: 'close-mid-upload'; afterBytes: number };

export interface SeenRequest {
  /** The injected clock when the request arrived. */
  at: number;
  /** The injected clock when the answer (or the cut) was sent; undefined while it is pending or stalled. */
  answeredAt?: number;
  method: string;
  path: string;
  objectId: string;
  fault: Fault['kind'];
  /** Headers of the answer the cloud gave, when it gave one. */
  answerHeaders?: Record<string, string>;
}

export interface FaultyCloud {
  url: string;
  port: number;
  requests(): SeenRequest[];
  close(): Promise<void>;
}

/**
 * A small hostile cloud on loopback in front of the reference receiver (`upstream`): each request gets
 * the fault `plan` picks for it, given the request's number (1-based) overall and for its object id.
 */
export async function startFaultyCloud(options: {
  upstream: string;
  plan: (n: { overall: number; forObject: number }, objectId: string) => Fault;
  clock?: () => number;
}): Promise<FaultyCloud> {
  const clock = options.clock ?? Date.now;
  const upstream = new URL(options.upstream);
  const seen: SeenRequest[] = [];
  const perObject = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();

  function forward(req: IncomingMessage, cutAfter: number | undefined, onAnswer: (status: number, headers: Record<string, string>, body: Buffer) => void, cut: () => void): void {
    const headers: Record<string, string> = {};
    for (const name of ['authorization', 'content-type', 'content-length']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
      const parts: Buffer[] = [];
      answer.on('data', (c: Buffer) => parts.push(c));
      answer.on('end', () => {
        const relayed: Record<string, string> = {};
        for (const [k, v] of Object.entries(answer.headers)) if (typeof v === 'string' && k !== 'connection' && k !== 'keep-alive') relayed[k] = v;
        onAnswer(answer.statusCode ?? 502, relayed, Buffer.concat(parts));
      });
    });
    up.on('error', () => undefined);
    let bytes = 0;
    let cutDone = false;
    req.on('data', (chunk: Buffer) => {
      if (cutDone) return;
      if (cutAfter !== undefined && bytes + chunk.length >= cutAfter) {
        // Both sides see the connection vanish mid-body (the receiver once it has the first part).
        up.write(chunk.subarray(0, Math.max(0, cutAfter - bytes)), () => up.destroy());
        bytes = cutAfter;
        cutDone = true;
        cut();
        return;
      }
      bytes += chunk.length;
      up.write(chunk);
    });
    req.on('end', () => up.end());
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const objectId = (req.url ?? '').split('/')[4] ?? '';
    const forObject = (perObject.get(objectId) ?? 0) + 1;
    perObject.set(objectId, forObject);
    const fault = options.plan({ overall: seen.length + 1, forObject }, objectId);
    const record: SeenRequest = { at: clock(), method: req.method ?? '', path: req.url ?? '', objectId, fault: fault.kind };
    seen.push(record);
    const answer = (status: number, headers: Record<string, string>, body: Buffer | string) => {
      record.answeredAt = clock();
      record.answerHeaders = headers;
      res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    };
    switch (fault.kind) {
      case 'pass':
        forward(req, undefined, (status, headers, body) => answer(status, headers, body), () => undefined);
        return;
      case 'status':
        req.resume();
        req.on('end', () => answer(fault.status, fault.headers ?? {}, fault.body ?? JSON.stringify({ error: { code: 'fault', message: `injected ${fault.status}` } })));
        return;
      case 'stall-answer':
        forward(
          req,
          undefined,
          () => {
            if (fault.trickleMs !== undefined) {
              res.writeHead(200, { 'content-type': 'application/json' });
              res.write('{"objectId":');
              const timer = setInterval(() => res.write(' '), fault.trickleMs);
              timers.add(timer);
              res.on('close', () => {
                clearInterval(timer);
                timers.delete(timer);
              });
            }
          },
          () => undefined,
        );
        return;
      case 'wrong-receipt':
        forward(
          req,
          undefined,
          (_status, _headers, body) => {
            const stored = JSON.parse(body.toString()) as { objectId: string; bytes: number };
            answer(200, { 'content-type': 'application/json' }, JSON.stringify(fault.receipt(stored.objectId, stored.bytes)));
          },
          () => undefined,
        );
        return;
      case 'close-mid-upload':
        forward(req, fault.afterBytes, () => undefined, () => {
          record.answeredAt = clock();
          req.socket.destroy();
        });
        return;
      default:
        fault satisfies never;
    }
  }

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: () => seen.map((r) => ({ ...r })),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
