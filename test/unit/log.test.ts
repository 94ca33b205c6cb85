import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
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
