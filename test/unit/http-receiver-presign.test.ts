import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { HttpReceiverStore } from '../../src/uplink/http-receiver-store.js';
import { classifyStoreResponse, parsePresignAnswer } from '../../src/uplink/presign-answer.js';

/**
 * The hub's side of the presign extension, against loopback servers scripted per test: when it asks, what
 * it sends where, and what it refuses. (The real receiver and store are in test/integration/receiver-s3.test.ts.)
 */
const HUB = 'hub_abcdefghijklmnop';
const ID = 'a'.repeat(26);
const TOKEN = 'hub-bearer-token-1234567890';
const SIGNATURE = 'f00dfeedf00dfeedf00dfeedf00dfeed';
const BODY = Buffer.from('age-encryption.org/v1\n-> X25519 abc\nbody\n--- mac\npayload');

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

async function serve(handler: (req: IncomingMessage, body: Buffer, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen, server };
}

const dir = mkdtempSync(join(tmpdir(), 'camveil-presign-'));
const servers: Server[] = [];
beforeAll(() => writeFileSync(join(dir, 'token'), TOKEN, { mode: 0o600 }));
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function json(res: ServerResponse, status: number, body: unknown, presigns = true): void {
  res.writeHead(status, { 'content-type': 'application/json', ...(presigns ? { 'camveil-uploads': 'presign' } : {}) });
  res.end(JSON.stringify(body));
}

/** A store (the presigned URL's host) answering `status`, and a receiver presigning toward it with `answer`. */
async function setUp(options: { storeStatus?: number; storeEtag?: boolean; answer?: (storeUrl: string) => unknown; postStatus?: number }) {
  const store = await serve((_req, _body, res) => {
    const status = options.storeStatus ?? 200;
    res.writeHead(status, options.storeEtag === false || status !== 200 ? {} : { etag: '"abc"' });
    res.end(status === 200 ? '' : `<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>signed ${SIGNATURE}</Message></Error>`);
  });
  const receiver = await serve((req, body, res) => {
    if (req.method === 'GET') return json(res, 200, []);
    if (req.method === 'POST') {
      if (options.postStatus !== undefined) return json(res, options.postStatus, { error: { code: 'not_found', message: 'no such resource' } }, false);
      const answer = options.answer?.(store.url) ?? {
        url: `${store.url}/bucket/p/${HUB}/${ID}.age?X-Amz-Signature=${SIGNATURE}`,
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(BODY.length) },
        expiresAt: new Date(Date.now() + 300_000).toISOString(),
      };
      return json(res, 200, answer);
    }
    return json(res, 200, { objectId: ID, bytes: body.length }, options.postStatus === undefined);
  });
  servers.push(store.server, receiver.server);
  const hub = new HttpReceiverStore({ endpoint: validateEndpoint(receiver.url), hubPseudonym: HUB, tokenFile: join(dir, 'token') });
  hub.open();
  return { hub, store, receiver };
}

const never = new AbortController().signal;
const object = { objectId: ID, bytes: BODY.length };

describe('HttpReceiverStore and presigned uploads', () => {
  it('asks only after the receiver said it presigns, then PUTs the body to the store with no bearer token', async () => {
    const { hub, store, receiver } = await setUp({});
    // Nothing heard yet: today's PUT to the receiver (which says it presigns).
    expect(await hub.put(object, BODY, never)).toEqual({ kind: 'uploaded' });
    expect(receiver.seen.map((s) => s.method)).toEqual(['PUT']);
    expect(store.seen).toEqual([]);
    expect(await hub.put(object, BODY, never)).toEqual({ kind: 'uploaded' });
    expect(receiver.seen.map((s) => [s.method, s.url])).toEqual([
      ['PUT', `/v1/objects/${HUB}/${ID}`],
      ['POST', `/v1/uploads/${HUB}/${ID}`],
    ]);
    expect(JSON.parse(receiver.seen[1]!.body.toString())).toEqual({ bytes: BODY.length });
    expect(receiver.seen[1]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(store.seen).toHaveLength(1);
    const put = store.seen[0]!;
    expect(put.method).toBe('PUT');
    expect(put.body.equals(BODY)).toBe(true);
    expect(put.headers.authorization).toBeUndefined();
    expect(JSON.stringify(put.headers)).not.toContain(TOKEN);
    expect(put.headers['content-length']).toBe(String(BODY.length));
    expect(put.headers['content-type']).toBe('application/octet-stream');
  });

  it('goes back to plain PUTs when a presign request is answered 404 (a receiver restarted without presigning)', async () => {
    const { hub, receiver } = await setUp({ postStatus: 404 });
    const server = receiver.server;
    server.removeAllListeners('request');
    let presigning = true;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        receiver.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        if (req.method === 'GET') return json(res, 200, [], presigning);
        if (req.method === 'POST') return json(res, 404, { error: { code: 'not_found', message: 'no such resource' } }, false);
        return json(res, 200, { objectId: ID, bytes: chunks.reduce((n, c) => n + c.length, 0) }, false);
      });
    });
    await hub.list();
    presigning = false;
    expect(await hub.put(object, BODY, never)).toEqual({ kind: 'uploaded' });
    expect(await hub.put(object, BODY, never)).toEqual({ kind: 'uploaded' });
    expect(receiver.seen.map((s) => s.method)).toEqual(['GET', 'POST', 'PUT', 'PUT']);
  });

  it.each([
    ['an Authorization header', (u: string) => ({ url: `${u}/k`, method: 'PUT', headers: { Authorization: 'Bearer x' }, expiresAt: 'x' }), /header "authorization"/],
    ['plain http to a remote host', () => ({ url: `http://store.example.net/k?X-Amz-Signature=${SIGNATURE}`, method: 'PUT', headers: {}, expiresAt: 'x' }), /must be https/],
    ['another size', (u: string) => ({ url: `${u}/k`, method: 'PUT', headers: { 'content-length': '1' }, expiresAt: 'x' }), /content-length 1 is not/],
    ['another method', (u: string) => ({ url: `${u}/k`, method: 'POST', headers: {}, expiresAt: 'x' }), /\(method\)/],
  ])('refuses a presign answer with %s: nothing goes to the store, and the message holds no signature', async (_what, answer, message) => {
    const { hub, store } = await setUp({ answer });
    await hub.list();
    const outcome = await hub.put(object, BODY, never);
    expect(outcome.kind).toBe('retry');
    if (outcome.kind === 'uploaded') return;
    expect(outcome.error.code).toBe('CAMVEIL_E_CLOUD_PROTOCOL');
    expect(outcome.error.message).toMatch(message);
    expect(outcome.error.message).not.toContain(SIGNATURE);
    expect(store.seen).toEqual([]);
  });

  it("reports the store's refusal by status and S3 code only; 403 is retried (a fresh URL next time), a 200 without ETag is a protocol error", async () => {
    const refused = await setUp({ storeStatus: 403 });
    await refused.hub.list();
    const outcome = await refused.hub.put(object, BODY, never);
    expect(outcome.kind).toBe('retry');
    if (outcome.kind === 'uploaded') return;
    expect(outcome.error.message).toBe('presigned upload: the object store answered HTTP 403 AccessDenied');
    const noEtag = await setUp({ storeEtag: false });
    await noEtag.hub.list();
    const second = await noEtag.hub.put(object, BODY, never);
    expect(second.kind === 'retry' && second.error.code).toBe('CAMVEIL_E_CLOUD_PROTOCOL');
  });
});

describe('presign answer and store response parsing', () => {
  it('keeps the allowed headers, lower-cased, and sets Content-Length to the object size', () => {
    const put = parsePresignAnswer(JSON.stringify({ url: 'https://s3.example.net/b/k?X-Amz-Signature=1', method: 'PUT', headers: { 'Content-Type': 'application/octet-stream', 'x-amz-acl': 'private' }, expiresAt: 'x' }), 42);
    expect(put.headers).toEqual({ 'content-type': 'application/octet-stream', 'x-amz-acl': 'private', 'content-length': '42' });
    expect(put.url.hostname).toBe('s3.example.net');
    expect(() => parsePresignAnswer('{"url":"https://u:p@h/k","method":"PUT","headers":{},"expiresAt":"x"}', 1)).toThrow(/credentials/);
    expect(() => parsePresignAnswer('not json', 1)).toThrow(/not JSON/);
  });

  it('classifies store answers: 2xx+ETag stored, 5xx and 429 retried with Retry-After, other 4xx refused', () => {
    const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n] ?? null });
    expect(classifyStoreResponse({ status: 200, headers: headers({ etag: '"e"' }) }, '', 0)).toEqual({ kind: 'uploaded' });
    const slow = classifyStoreResponse({ status: 503, headers: headers({ 'retry-after': '7' }) }, '<Error><Code>SlowDown</Code></Error>', 0);
    expect(slow.kind === 'retry' && [slow.retryAfterMs, slow.error.message]).toEqual([7000, 'presigned upload: the object store answered HTTP 503 SlowDown']);
    const bad = classifyStoreResponse({ status: 400, headers: headers({}) }, '<Error><Code>InvalidArgument</Code><Message>X-Amz-Credential=AKIA</Message></Error>', 0);
    expect(bad.kind).toBe('reject');
    expect(bad.kind === 'reject' && bad.error.message).not.toContain('AKIA');
  });
});
