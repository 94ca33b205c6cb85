import { sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import fc from 'fast-check';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { AppClient } from '../../src/control/app-client.js';
import { generateAppKey, type AppKey } from '../../src/control/app-key.js';
import { defineHandler } from '../../src/control/command.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { RefusalBudget } from '../../src/control/refusal-budget.js';
import { MAX_REQUEST_BYTES } from '../../src/control/envelope.js';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { replyOf, testHubKeys, type TestHubKeys } from '../harness/hub-keys.js';
import { RecordingControlClient } from '../harness/recording-control-client.js';

const BASE = 'camveil';
const HUB = 'fuzz-hub';
const REQ = `${BASE}/${HUB}/request`;
const TARGET = { v: 2, hub: HUB, base: BASE };
/** The paired phone's age identity: replies are sealed to its recipient. */
let PHONE = '';

/** `global.gc`, exposed at run time when the worker was not started with --expose-gc. */
function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

let dir: string;
let db: Database.Database;
let registry: KeyRegistry;
let audit: AuditLog;
let client: RecordingControlClient;
let plane: ControlPlane;
let keys: TestHubKeys;
const key: AppKey = generateAppKey();
const clock = 1_800_000_000_000;
const calls = { widen: 0, boom: 0 };
/** Signed `test/widen` requests already accepted once: any of them, or an equivalent, is now a replay. */
const consumed: Array<{ bytes: Buffer; payload: Record<string, unknown> }> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'camveil-fuzz-'));
  db = openDatabase(dir);
  registry = new KeyRegistry(db);
  audit = new AuditLog(db);
  client = new RecordingControlClient();
  keys = await testHubKeys(HUB, BASE);
  plane = new ControlPlane({
    hub: keys.hub,
    client,
    baseTopic: BASE,
    hubId: HUB,
    registry,
    audit,
    logger: silentLogger(),
    now: () => clock,
    // Every refusal answered, so each reply's shape is checked (the budget has its own test).
    refusalBudget: new RefusalBudget({ perSecond: Number.POSITIVE_INFINITY, burst: Number.POSITIVE_INFINITY }),
    handlers: {
      'test/widen': defineHandler({ requires: 'signature', args: z.strictObject({ n: z.number() }), run: () => ++calls.widen }),
      'test/boom': defineHandler({
        requires: 'none',
        args: z.strictObject({ mode: z.enum(['throw', 'reject', 'bigint']) }),
        run: (args) => {
          calls.boom++;
          if (args.mode === 'throw') throw new Error('secret detail /home/anna/rtsp://u:p@cam');
          if (args.mode === 'reject') return Promise.reject(new TypeError('nope'));
          return { big: 1n };
        },
      }),
    },
  });
  PHONE = await generateX25519Identity();
  registry.add({ publicKey: key.publicKey, recipient: await identityToRecipient(PHONE) }, clock);
  const app = new AppClient({ client, baseTopic: BASE, hubId: HUB, key, now: () => clock, pinned: keys.pinned });
  for (let i = 0; i < 20; i++) {
    const prepared = await app.prepare('test/widen', { n: i }, { sign: true });
    await plane.handle(`${REQ}/test/widen`, prepared.bytes);
    const envelope = JSON.parse(prepared.bytes.toString()) as { payload: string };
    consumed.push({ bytes: prepared.bytes, payload: JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as Record<string, unknown> });
  }
  expect(calls.widen).toBe(20);
});

afterAll(() => {
  db?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function envelopeOf(payload: unknown, signer?: AppKey): Buffer {
  const bytes = Buffer.from(JSON.stringify(payload) ?? 'null', 'utf8');
  const envelope: Record<string, string> = { payload: bytes.toString('base64') };
  if (signer !== undefined) {
    envelope.keyId = signer.keyId;
    envelope.sig = sign(null, bytes, signer.privateKey).toString('base64');
  }
  return Buffer.from(JSON.stringify(envelope), 'utf8');
}

/** `args` sealed with age to `recipient` (the hub's by default), base64: what goes in `sealedArgs`. */
async function sealedArgs(args: unknown, recipient = keys.hub.recipient): Promise<string> {
  return (await encryptToBuffer([recipient], Buffer.from(JSON.stringify(args)))).toString('base64');
}

const stranger = generateAppKey();
const base = fc.integer({ min: 0, max: 19 }).map((i) => consumed[i]!);
const weirdValue = fc.oneof(
  fc.anything(),
  fc.constantFrom(1e308, -1e308, 2 ** 53, 2 ** 53 + 2, -1, 0, 0.5, NaN, '', '1', null, [], {}, true),
  fc.string({ maxLength: 300 }),
);
const fields = ['v', 'hub', 'base', 'command', 'transaction', 'seq', 'ts', 'args', 'sealedArgs', 'extra'] as const;

/** Each case: the command topic suffix and the raw bytes. */
const cases: fc.Arbitrary<{ command: string; bytes: Buffer }> = fc.oneof(
  // Random bytes and random JSON.
  fc.uint8Array({ maxLength: 2048 }).map((b) => ({ command: 'test/widen', bytes: Buffer.from(b) })),
  fc.jsonValue().map((v) => ({ command: 'test/widen', bytes: Buffer.from(JSON.stringify(v) ?? 'null') })),
  // Random payloads in a well-formed envelope, unsigned or signed by a stranger or the paired key.
  fc.tuple(fc.jsonValue(), fc.constantFrom(undefined, stranger, key)).map(([p, s]) => ({ command: 'test/widen', bytes: envelopeOf(p, s) })),
  // Byte-level mutations of accepted requests (a mutation that changes nothing is a replay).
  fc.tuple(base, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 0, maxLength: 6 })).map(([b, edits]) => {
    const bytes = Buffer.from(b.bytes);
    for (const [at, value] of edits) bytes[at % bytes.length] = value;
    return { command: 'test/widen', bytes };
  }),
  fc.tuple(base, fc.nat(), fc.nat({ max: 40 }), fc.uint8Array({ maxLength: 40 })).map(([b, at, cut, insert]) => {
    const i = at % b.bytes.length;
    return { command: 'test/widen', bytes: Buffer.concat([b.bytes.subarray(0, i), Buffer.from(insert), b.bytes.subarray(i + cut)]) };
  }),
  // Field-level mutations: re-signed with a used seq (replay), signed by a stranger, or unsigned.
  fc.tuple(base, fc.constantFrom(...fields), weirdValue, fc.constantFrom(undefined, stranger, key)).map(([b, field, value, signer]) => {
    const payload: Record<string, unknown> = { ...b.payload, [field]: value };
    if (signer === key && field === 'seq') payload.seq = b.payload.seq; // only ever a used number with the real key
    return { command: 'test/widen', bytes: envelopeOf(payload, signer) };
  }),
  // Wrong types in the envelope itself.
  fc.tuple(base, fc.constantFrom('payload', 'keyId', 'sig', 'more'), weirdValue).map(([b, field, value]) => {
    const envelope = { ...(JSON.parse(b.bytes.toString()) as Record<string, unknown>), [field]: value };
    return { command: 'test/widen', bytes: Buffer.from(JSON.stringify(envelope) ?? 'null') };
  }),
  // Deep JSON, in the envelope and inside the payload's args.
  fc.integer({ min: 1, max: 30_000 }).map((depth) => ({ command: 'test/widen', bytes: Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`) })),
  fc.tuple(base, fc.integer({ min: 1, max: 20_000 })).map(([b, depth]) => {
    const payload = Buffer.from(JSON.stringify({ ...b.payload, args: 0 }).replace('"args":0', `"args":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`));
    return { command: 'test/widen', bytes: Buffer.from(JSON.stringify({ payload: payload.toString('base64') })) };
  }),
  // Oversized.
  // Just over the cap (about 4.6 MiB since it admits five enrolment photos): up to 4× would allocate gigabytes over the run.
  fc.integer({ min: MAX_REQUEST_BYTES + 1, max: MAX_REQUEST_BYTES + 64 * 1024 }).map((size) => ({ command: 'test/widen', bytes: Buffer.alloc(size, 0x20) })),
  // Other topics: unknown commands, commands that need a signature, mismatches.
  fc.tuple(base, fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('devices/add', 'devices/revoke', 'pair', 'nope', ''))).map(([b, command]) => ({
    command,
    bytes: command === 'test/widen' ? b.bytes : envelopeOf({ ...b.payload, command }),
  })),
);

function snapshot(): string {
  return JSON.stringify({ keys: registry.list(), head: audit.head(), calls });
}

describe('control plane under fuzzing', () => {
  it('answers ≥ 10,000 hostile requests with exactly one error each and changes nothing', async () => {
    const before = snapshot();
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const codes = new Map<string, number>();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(cases, async ({ command, bytes }) => {
        runs++;
        const start = client.published.length;
        await plane.handle(command === '' ? REQ : `${REQ}/${command}`, bytes);
        expect(client.published.length).toBe(start + 1);
        const reply = client.published[start]!;
        expect(reply.topic).toBe(command === '' ? `${BASE}/${HUB}/response` : `${BASE}/${HUB}/response/${command}`);
        const body = await replyOf(reply.message, keys.pinned, clock, PHONE);
        expect(body.status).toBe('error');
        if (body.status !== 'error') return;
        expect(body.error.code).not.toBe('CAMVEIL_E_INTERNAL');
        codes.set(body.error.code, (codes.get(body.error.code) ?? 0) + 1);
        client.published.length = 0;
      }),
      { numRuns: 12_000, seed: 20261123 },
    );
    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(snapshot()).toBe(before);
    expect(runs).toBeGreaterThanOrEqual(10_000);
    expect(heapGrowth).toBeLessThan(50 * 1024 * 1024);
    console.info(`control fuzz: ${runs} requests, heap ${(heapGrowth / 1024 / 1024).toFixed(1)} MiB, codes ${JSON.stringify(Object.fromEntries(codes))}`);
  }, 600_000);

  it('turns handler exceptions, rejections and unserialisable data into one error reply without details', async () => {
    for (const mode of ['throw', 'reject', 'bigint']) {
      client.published.length = 0;
      await plane.handle(`${REQ}/test/boom`, envelopeOf({ ...TARGET, command: 'test/boom', transaction: `t-${mode}`, seq: 1, ts: clock, sealedArgs: await sealedArgs({ mode }) }));
      expect(client.published).toHaveLength(1);
      const body = await replyOf(client.published[0]!.message, keys.pinned, clock, PHONE);
      expect(body).toEqual({ data: {}, status: 'error', error: { code: 'CAMVEIL_E_INTERNAL', message: 'internal error (see the hub log)' }, transaction: `t-${mode}` });
    }
    expect(calls.boom).toBe(3);
  });

  it('refuses retained requests and stale timestamps', async () => {
    client.published.length = 0;
    const fresh = envelopeOf({ ...TARGET, command: 'test/boom', transaction: 'r', seq: 1, ts: clock, sealedArgs: await sealedArgs({ mode: 'throw' }) });
    await plane.handle(`${REQ}/test/boom`, fresh, true);
    const stale = envelopeOf({ ...TARGET, command: 'test/boom', transaction: 's', seq: 1, ts: clock - 5 * 60_000 - 1, sealedArgs: await sealedArgs({ mode: 'throw' }) });
    await plane.handle(`${REQ}/test/boom`, stale);
    const codes = (await Promise.all(client.published.map((p) => replyOf(p.message, keys.pinned, clock, PHONE)))).map((r) => (r.status === 'error' ? r.error.code : 'ok'));
    expect(codes).toEqual(['CAMVEIL_E_REQUEST_INVALID', 'CAMVEIL_E_REQUEST_INVALID']);
    expect(calls.boom).toBe(3);
  });

  it('refuses a request naming another hub or base topic, signed or not, and runs nothing', async () => {
    client.published.length = 0;
    const other = envelopeOf({ ...TARGET, hub: 'other-hub', command: 'test/boom', transaction: 'h', seq: 1, ts: clock, args: { mode: 'throw' } });
    await plane.handle(`${REQ}/test/boom`, other);
    const base = envelopeOf({ ...TARGET, base: 'elsewhere', command: 'test/boom', transaction: 'b', seq: 1, ts: clock, args: { mode: 'throw' } });
    await plane.handle(`${REQ}/test/boom`, base);
    const signed = envelopeOf({ ...TARGET, hub: 'other-hub', command: 'test/widen', transaction: 'w', seq: clock + 1_000_000, ts: clock, args: { n: 1 } }, key);
    await plane.handle(`${REQ}/test/widen`, signed);
    const replies = await Promise.all(client.published.map((p) => replyOf(p.message, keys.pinned, clock, PHONE)));
    expect(replies.map((r) => (r.status === 'error' ? r.error.code : 'ok'))).toEqual(['CAMVEIL_E_REQUEST_INVALID', 'CAMVEIL_E_REQUEST_INVALID', 'CAMVEIL_E_REQUEST_INVALID']);
    expect(replies.map((r) => (r.status === 'error' ? r.error.message : ''))).toEqual(Array(3).fill(expect.stringMatching(/another hub/) as string));
    expect(calls.boom).toBe(3);
    expect(calls.widen).toBe(20);
  });

  describe('sealed args', () => {
    /** Handles one request and returns the reply's error code (or 'ok') and message. */
    async function outcome(on: ControlPlane, command: string, bytes: Buffer, pinned = keys.pinned): Promise<{ code: string; message: string }> {
      client.published.length = 0;
      await on.handle(`${on.topics.request}/${command}`, bytes);
      expect(client.published).toHaveLength(1);
      const reply = await replyOf(client.published[0]!.message, pinned, clock, PHONE);
      return reply.status === 'error' ? reply.error : { code: 'ok', message: '' };
    }
    let seq = clock + 10_000_000;
    /** A signed test/widen payload with a fresh seq, its args given as `fields`. */
    const widen = (fields: Record<string, unknown>): Record<string, unknown> => ({ ...TARGET, command: 'test/widen', transaction: `w${++seq}`, seq, ts: clock, ...fields });

    it('refuses clear args (signed or not), changes nothing, and leaves the seq unused', async () => {
      const before = snapshot();
      const payload = widen({ args: { n: 1 } });
      expect(await outcome(plane, 'test/widen', envelopeOf(payload, key))).toEqual({ code: 'CAMVEIL_E_REQUEST_INVALID', message: expect.stringMatching(/args must be sealed to the hub/) as string });
      const unsigned = { ...TARGET, command: 'test/boom', transaction: 'clear', seq: 1, ts: clock, args: { mode: 'throw' } };
      expect(await outcome(plane, 'test/boom', envelopeOf(unsigned))).toMatchObject({ code: 'CAMVEIL_E_REQUEST_INVALID', message: expect.stringMatching(/args must be sealed/) as string });
      // Clear and sealed together are refused too.
      expect((await outcome(plane, 'test/widen', envelopeOf({ ...payload, sealedArgs: await sealedArgs({ n: 1 }) }, key))).code).toBe('CAMVEIL_E_REQUEST_INVALID');
      expect(snapshot()).toBe(before);
      // The same seq, its args sealed: accepted (the refusals did not consume it).
      expect((await outcome(plane, 'test/widen', envelopeOf({ ...payload, args: undefined, sealedArgs: await sealedArgs({ n: 1 }) }, key))).code).toBe('ok');
      expect(calls.widen).toBe(21);
    });

    it('refuses args sealed to another recipient or altered, naming sealedArgs; nothing runs, the seq stays unused', async () => {
      const before = snapshot();
      const other = await identityToRecipient(await generateX25519Identity());
      const toOther = widen({ sealedArgs: await sealedArgs({ n: 2 }, other) });
      const refused = { code: 'CAMVEIL_E_REQUEST_INVALID', message: expect.stringMatching(/sealedArgs/) as string };
      expect(await outcome(plane, 'test/widen', envelopeOf(toOther, key))).toEqual(refused);
      // Altered ciphertext, signed as it is (by the app itself): it does not open.
      const genuine = Buffer.from(await sealedArgs({ n: 2 }), 'base64');
      genuine[genuine.length - 5]! ^= 0x01;
      expect(await outcome(plane, 'test/widen', envelopeOf({ ...toOther, sealedArgs: genuine.toString('base64') }, key))).toEqual(refused);
      // Truncated, unsigned (a withdrawal's args the broker cut): refused the same way.
      const cut = (await sealedArgs({ mode: 'throw' })).slice(0, 200);
      expect(await outcome(plane, 'test/boom', envelopeOf({ ...TARGET, command: 'test/boom', transaction: 'cut', seq: 1, ts: clock, sealedArgs: cut }))).toEqual(refused);
      // Not JSON inside.
      const notJson = (await encryptToBuffer([keys.hub.recipient], Buffer.from('{"n":'))).toString('base64');
      expect(await outcome(plane, 'test/widen', envelopeOf({ ...toOther, sealedArgs: notJson }, key))).toEqual(refused);
      expect(snapshot()).toBe(before);
      expect(calls.boom).toBe(3);
      // The broker altering the ciphertext of a signed request breaks the signature (it covers the ciphertext).
      const signed = widen({ sealedArgs: await sealedArgs({ n: 2 }) });
      const bytes = Buffer.from(signed.sealedArgs as string, 'base64');
      bytes[bytes.length - 5]! ^= 0x01;
      const envelope = JSON.parse(envelopeOf(signed, key).toString()) as { payload: string; keyId: string; sig: string };
      const tampered = Buffer.from(JSON.stringify({ ...signed, sealedArgs: bytes.toString('base64') }));
      expect((await outcome(plane, 'test/widen', Buffer.from(JSON.stringify({ ...envelope, payload: tampered.toString('base64') })))).code).toBe('CAMVEIL_E_SIGNATURE_INVALID');
      // The seq of the first refusal is still free.
      expect((await outcome(plane, 'test/widen', envelopeOf({ ...toOther, sealedArgs: await sealedArgs({ n: 2 }) }, key))).code).toBe('ok');
      expect(calls.widen).toBe(22);
    });

    it("refuses hub A's sealed args on hub B: by the hub id, and, renamed for B, because B cannot open them", async () => {
      const keysB = await testHubKeys('hub-b', BASE);
      const hubB = new ControlPlane({
        hub: keysB.hub,
        client,
        baseTopic: BASE,
        hubId: 'hub-b',
        registry,
        audit,
        logger: silentLogger(),
        now: () => clock,
        handlers: { 'test/widen': defineHandler({ requires: 'signature', args: z.strictObject({ n: z.number() }), run: () => ++calls.widen }) },
      });
      const before = snapshot();
      const forA = widen({ sealedArgs: await sealedArgs({ n: 3 }) });
      expect(await outcome(hubB, 'test/widen', envelopeOf(forA, key), keysB.pinned)).toEqual({ code: 'CAMVEIL_E_REQUEST_INVALID', message: expect.stringMatching(/another hub/) as string });
      const renamed = { ...forA, hub: 'hub-b' };
      expect(await outcome(hubB, 'test/widen', envelopeOf(renamed, key), keysB.pinned)).toEqual({ code: 'CAMVEIL_E_REQUEST_INVALID', message: expect.stringMatching(/sealedArgs/) as string });
      expect(snapshot()).toBe(before);
    });
  });
});
