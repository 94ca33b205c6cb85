import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CamveilError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { redactText, redactUrl } from '../../src/redact.js';

function capture(): { lines: () => string; stream: PassThrough } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, lines: () => Buffer.concat(chunks).toString() };
}

describe('redaction', () => {
  it('strips credentials from URLs and Foscam-style query parameters', () => {
    expect(redactUrl('rtsp://admin:hunter2@10.0.0.2:88/videoMain')).toBe('rtsp://***@10.0.0.2:88/videoMain');
    expect(redactUrl('http://cam:88/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=admin&pwd=hunter2')).not.toMatch(/hunter2|admin/);
    expect(redactText('[rtsp @ 0x55] method DESCRIBE failed for rtsp://admin:hunter2@10.0.0.2/x')).not.toContain('hunter2');
    expect(redactText('key AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQ')).not.toMatch(/1QQQQ/);
  });

  it('keeps secrets and personal data out of JSON log lines', () => {
    const out = capture();
    const log = createLogger({ destination: out.stream, level: 'debug' });
    log.info({ password: 'hunter2', camera: { serialNumber: 'FI9821W-SN-1234', mac: '00:11:22:33:44:55' }, token: 'tok-abc' }, 'connecting');
    log.warn('ffmpeg said: 401 Unauthorized for rtsp://admin:hunter2@cam/videoMain');
    log.error({ err: new Error('failed rtsp://admin:hunter2@cam/x') }, 'stream lost');
    const text = out.lines();
    for (const secret of ['hunter2', 'FI9821W-SN-1234', '00:11:22:33:44:55', 'tok-abc']) expect(text).not.toContain(secret);
    expect(text).toContain('connecting');
    expect(text.split('\n').filter(Boolean).every((l) => JSON.parse(l) !== null)).toBe(true);
  });
});

describe('the err serializer never throws', () => {
  const secret = 'rtsp://admin:hunter2@cam/x';
  function logged(err: unknown): Record<string, unknown> {
    const out = capture();
    const log = createLogger({ destination: out.stream });
    expect(() => log.error({ err }, 'failed')).not.toThrow();
    const lines = out.lines().split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(out.lines()).not.toContain('hunter2');
    return JSON.parse(lines[0]!) as Record<string, unknown>;
  }

  it('accepts a string, undefined, null, a number and a plain object', () => {
    expect((logged(`ENOSPC writing ${secret}`).err as { message: string }).message).toBe('ENOSPC writing rtsp://***@cam/x');
    expect(logged(undefined).msg).toBe('failed');
    expect((logged(null).err as { type: string }).type).toBe('null');
    expect((logged(42).err as { message: string }).message).toBe('42');
    expect((logged({ code: 'E_X', password: 'hunter2', detail: secret }).err as Record<string, unknown>)).toMatchObject({ code: 'E_X', detail: 'rtsp://***@cam/x' });
  });

  it('keeps the code, errno fields and the cause chain of an Error, redacted', () => {
    const root = Object.assign(new Error(`ENOSPC: no space left on device, write ${secret}`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    const outer = new CamveilError('CAMVEIL_E_STORE_WRITE_FAILED', 'object x was not stored', { cause: root });
    const err = logged(outer).err as Record<string, unknown> & { cause: Record<string, unknown> };
    expect(err).toMatchObject({ type: 'CamveilError', code: 'CAMVEIL_E_STORE_WRITE_FAILED', message: 'object x was not stored' });
    expect(err.cause).toMatchObject({ code: 'ENOSPC', errno: -28, syscall: 'write' });
    expect(err.cause.message).toContain('rtsp://***@cam/x');
    expect(err.cause.stack).toContain('ENOSPC');
  });

  it('survives a throwing getter, a cyclic cause, an AggregateError and a hostile toString', () => {
    const hostile = Object.defineProperty(new Error('outer'), 'code', { enumerable: true, get: () => { throw new Error('boom'); } });
    expect((logged(hostile).err as { message: string }).message).toBe('outer');
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as Error & { cause?: unknown }).cause = b;
    const cyclic = logged(a).err as { cause: { cause: { type: string } } };
    expect(cyclic.cause.cause.type).toBe('circular');
    const agg = logged(new AggregateError([new Error(`one ${secret}`), 'two'], 'several')).err as { errors: Array<{ message: string }> };
    expect(agg.errors.map((e) => e.message)).toEqual(['one rtsp://***@cam/x', 'two']);
    const weird = { toString: () => { throw new Error('no'); }, get message(): string { throw new Error('no'); } };
    expect(logged(weird).msg).toBe('failed');
    const proxy = new Proxy({}, { get: () => { throw new Error('trap'); }, ownKeys: () => { throw new Error('trap'); } });
    expect(logged(proxy).msg).toBe('failed');
  });

  it('writes a line even when another field cannot be serialised', () => {
    const out = capture();
    const log = createLogger({ destination: out.stream });
    const bad = { get boom(): string { throw new Error(`getter ${secret}`); } };
    expect(() => log.warn({ bad }, 'x')).not.toThrow();
    expect(out.lines()).toContain('a log line could not be serialised');
    expect(out.lines()).not.toContain('hunter2');
  });
});
