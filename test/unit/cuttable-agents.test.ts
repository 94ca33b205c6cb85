import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CuttableAgents } from '../../src/s3/cuttable-agents.js';
import { waitFor } from '../harness/wait.js';

// A self-signed certificate for localhost/127.0.0.1, made for these tests only (openssl, valid 100 years).
const key = readFileSync(new URL('../fixtures/tls/localhost-key.pem', import.meta.url));
const cert = readFileSync(new URL('../fixtures/tls/localhost-cert.pem', import.meta.url));

/**
 * The S3 client's connection pools: requests over them work as over Node's own agents (https: TLS over a
 * TCP socket made here, the certificate still checked), and cutAll() ends a request mid body with a reset,
 * which the server sees as an aborted request.
 */
describe('CuttableAgents', () => {
  const servers: Server[] = [];
  const agents: CuttableAgents[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) a.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** A server counting each request's body bytes and telling whether the request was aborted. */
  async function server(tls: boolean): Promise<{ port: number; seen: Array<{ bytes: number; aborted: boolean; done: boolean }> }> {
    const seen: Array<{ bytes: number; aborted: boolean; done: boolean }> = [];
    const handler = (req: IncomingMessage, res: import('node:http').ServerResponse) => {
      const entry = { bytes: 0, aborted: false, done: false };
      seen.push(entry);
      req.on('data', (c: Buffer) => (entry.bytes += c.length));
      req.on('error', () => (entry.aborted = true));
      req.on('close', () => (entry.done = true));
      req.on('end', () => res.end('ok'));
    };
    const s = tls ? createHttpsServer({ key, cert }, handler) : createHttpServer(handler);
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return { port: (s.address() as AddressInfo).port, seen };
  }

  for (const tls of [false, true]) {
    it(`${tls ? 'https' : 'http'}: a request goes through; cutAll() ends one mid body and the server sees it aborted`, async () => {
      const a = new CuttableAgents();
      agents.push(a);
      const { port, seen } = await server(tls);
      const send = (headers: Record<string, string>) =>
        tls
          ? httpsRequest({ host: 'localhost', port, method: 'PUT', path: '/o', agent: a.https, ca: cert, headers })
          : httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: '/o', agent: a.http, headers });
      const answer = await new Promise<string>((resolve, reject) => {
        const req = send({ 'content-length': '1000' });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end(Buffer.alloc(1000));
      });
      expect(answer).toBe('ok');
      expect(seen[0]?.bytes).toBe(1000);

      const errors: string[] = [];
      const req = send({ 'content-length': String(64 * 1024 * 1024) });
      req.on('error', (e) => errors.push(e.message));
      req.write(Buffer.alloc(1024 * 1024));
      await waitFor('the second request to begin', () => (seen[1]?.bytes ?? 0) > 0, 30_000);
      a.cutAll();
      await waitFor('the server to see the request end', () => seen[1]?.done === true, 30_000);
      expect(seen[1]?.aborted).toBe(true);
      expect(seen[1]?.bytes).toBeLessThan(64 * 1024 * 1024);
      await waitFor('the client to see its request fail', () => errors.length > 0, 30_000);
    }, 60_000);
  }

  it('https: a server whose certificate is not trusted is refused (the TLS check is not bypassed)', async () => {
    const a = new CuttableAgents();
    agents.push(a);
    const { port } = await server(true);
    const error = await new Promise<string>((resolve) => {
      const req = httpsRequest({ host: 'localhost', port, method: 'GET', path: '/', agent: a.https }, () => resolve('answered'));
      req.on('error', (e) => resolve(e.message));
      req.end();
    });
    expect(error).toMatch(/self.signed/);
  });
});
