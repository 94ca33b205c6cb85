import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { queryOnvifDevice } from '../../src/cameras/onvif.js';
import { resolveCameraSource } from '../../src/cameras/source.js';
import { runProbe } from '../../src/commands/probe.js';
import { cameraSchema } from '../../src/config/schema.js';
import type { CommandIO } from '../../src/commands/io.js';
import { startOnvifDevice, type OnvifDeviceSim } from '../harness/onvif-device.js';
import { describeWithPeers } from '../harness/peers.js';
import { startRtspServer, type RtspServer } from '../harness/rtsp-server.js';
import { motionVideo } from '../harness/video.js';

// Printable ASCII (node-onvif refuses anything else) with characters that need escaping in URLs and XML.
const PASSWORD = 'Zq7&p@ss:w0rd%21!';
const SERIAL = 'FI9900P-SN-8C7F3B2A';

function capture(): CommandIO & { out: string[]; err: string[]; all: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (s) => out.push(s), stderr: (s) => err.push(s), all: () => [...out, ...err].join('\n') };
}

/** A port nobody listens on: bind an ephemeral one, then close it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function passwordFile(password: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'camveil-probe-'));
  const file = path.join(dir, 'pw');
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return file;
}

function expectNoSecret(text: string, password: string): void {
  expect(text).not.toContain(password);
  expect(text).not.toContain(encodeURIComponent(password));
}

describe('ONVIF device queries (simulated Foscam)', () => {
  let sim: OnvifDeviceSim | undefined;
  let rtspPort: number;
  beforeAll(async () => {
    rtspPort = await closedPort();
  });
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });
  const start = async (extra: Partial<Parameters<typeof startOnvifDevice>[0]> = {}) => {
    sim = await startOnvifDevice({
      password: PASSWORD,
      mainUri: `rtsp://127.0.0.1:${rtspPort}/videoMain`,
      subUri: `rtsp://127.0.0.1:${rtspPort}/videoSub`,
      ...extra,
    });
    return sim;
  };

  it('reads facts and profiles with the right credentials (WS-Security digest)', async () => {
    const s = await start();
    const report = await queryOnvifDevice(s.xaddr, { user: 'admin', password: PASSWORD }, { timeoutMs: 5000 });
    expect(report.facts).toEqual({
      manufacturer: 'Foscam',
      model: 'FI9900P',
      firmware: '2.84.2.33',
      serialNumber: SERIAL,
      hardwareId: '1.4.1.10',
      mac: 'c4:d6:55:3a:2b:1c',
    });
    expect(report.profiles.map((p) => `${p.width}x${p.height}`)).toEqual(['1920x1080', '640x360']);
    expect(report.main).toMatchObject({ width: 1920, height: 1080, fps: 25, encoding: 'H264', streamUri: `rtsp://127.0.0.1:${rtspPort}/videoMain` });
    expect(report.sub).toMatchObject({ width: 640, height: 360, streamUri: `rtsp://127.0.0.1:${rtspPort}/videoSub` });
    // Foscam puts usr/pwd into the snapshot URI: they must come out masked.
    expect(report.main.snapshotUri).toMatch(/usr=\*\*\*&pwd=\*\*\*$/);
    expectNoSecret(JSON.stringify(report), PASSWORD);
    const protectedCalls = s.requests.filter((r) => !['GetSystemDateAndTime', 'GetCapabilities'].includes(r.action));
    expect(protectedCalls.length).toBeGreaterThan(0);
    expect(protectedCalls.every((r) => r.authenticated)).toBe(true);
  });

  it('refuses wrong or missing credentials with CAMERA_AUTH (SOAP NotAuthorized fault and HTTP 401)', async () => {
    const s = await start();
    await expect(queryOnvifDevice(s.xaddr, { user: 'admin', password: 'wrong-password' })).rejects.toMatchObject({
      code: 'CAMVEIL_E_CAMERA_AUTH',
      message: expect.stringContaining(s.xaddr) as unknown,
    });
    await expect(queryOnvifDevice(s.xaddr)).rejects.toMatchObject({ code: 'CAMVEIL_E_CAMERA_AUTH' });
    await s.stop();
    const t = await start({ authFailure: 'http-401' });
    const e = (await queryOnvifDevice(t.xaddr, { user: 'admin', password: 'wrong-password' }).catch((x: unknown) => x)) as Error & { code: string };
    expect(e.code).toBe('CAMVEIL_E_CAMERA_AUTH');
    expect(e.message).not.toContain('wrong-password');
  });

  it('reports a closed port as CAMERA_UNREACHABLE', async () => {
    const xaddr = `http://127.0.0.1:${await closedPort()}/onvif/device_service`;
    await expect(queryOnvifDevice(xaddr, { user: 'admin', password: PASSWORD })).rejects.toMatchObject({
      code: 'CAMVEIL_E_CAMERA_UNREACHABLE',
      message: expect.stringContaining(xaddr) as unknown,
    });
  });

  it('reports a device that never answers as CAMERA_UNREACHABLE within the timeout', async () => {
    const s = await start({ misbehave: 'hang' });
    // The rejection itself shows the timeout fired: a hanging device never answers.
    await expect(queryOnvifDevice(s.xaddr, { user: 'admin', password: PASSWORD }, { timeoutMs: 800 })).rejects.toMatchObject({
      code: 'CAMVEIL_E_CAMERA_UNREACHABLE',
    });
  });

  it('reports malformed XML and malformed device information as CAMERA_PROTOCOL naming the field', async () => {
    const s = await start({ misbehave: 'malformed-xml' });
    await expect(queryOnvifDevice(s.xaddr, { user: 'admin', password: PASSWORD })).rejects.toMatchObject({ code: 'CAMVEIL_E_CAMERA_PROTOCOL' });
    await s.stop();
    const t = await start({ misbehave: 'bad-device-info' });
    const e = (await queryOnvifDevice(t.xaddr, { user: 'admin', password: PASSWORD }).catch((x: unknown) => x)) as Error & { code: string };
    expect(e.code).toBe('CAMVEIL_E_CAMERA_PROTOCOL');
    expect(e.message).toContain(t.xaddr);
    expect(e.message).toContain('GetDeviceInformation.SerialNumber');
    expect(e.message).toContain('GetDeviceInformation.Model');
    expect(e.message).not.toContain(SERIAL);
  });

  it('refuses credentials node-onvif cannot send, with a clear message', async () => {
    const s = await start();
    await expect(queryOnvifDevice(s.xaddr, { user: 'admin', password: 'pässwort' })).rejects.toMatchObject({ code: 'CAMVEIL_E_USAGE' });
    await expect(queryOnvifDevice(s.xaddr.replace('http:', 'https:'), { user: 'admin', password: PASSWORD })).rejects.toMatchObject({
      code: 'CAMVEIL_E_USAGE',
    });
  });

  it('resolves an ONVIF camera source into stream URLs with credentials for ffmpeg only', async () => {
    const s = await start();
    const cam = cameraSchema.parse({ id: 'door', source: s.xaddr, credentials: { username: 'admin', passwordEnv: 'X' } });
    const r = await resolveCameraSource(cam, PASSWORD, { timeoutMs: 5000 });
    expect(r.kind).toBe('onvif');
    expect(decodeURIComponent(new URL(r.main).password)).toBe(PASSWORD);
    expect(new URL(r.sub!).pathname).toBe('/videoSub');
    expect(r.display).toEqual({ main: `rtsp://127.0.0.1:${rtspPort}/videoMain`, sub: `rtsp://127.0.0.1:${rtspPort}/videoSub` });
    expect(r.facts?.manufacturer).toBe('Foscam');
  });

  it('runProbe refuses credentials in the URL and an unreadable password file with exit 2, echoing neither', async () => {
    const io = capture();
    expect(await runProbe(`rtsp://admin:${PASSWORD}@127.0.0.1:${rtspPort}/videoMain`, {}, io, {})).toBe(2);
    expectNoSecret(io.all(), PASSWORD);
    expect(io.err.join('\n')).toContain('CAMVEIL_E_USAGE');
    const io2 = capture();
    expect(await runProbe('onvif://127.0.0.1', { user: 'admin', passwordFile: '/nonexistent/pw' }, io2, {})).toBe(2);
    expect(io2.err.join('\n')).toContain('CAMVEIL_E_SECRET_UNREADABLE');
  });

  it('runProbe reports an http URL that is not an ONVIF device clearly', async () => {
    const servers: Server[] = [];
    const serve = async (status: number, body: string) => {
      const srv = createServer((_req, res) => {
        res.writeHead(status, { 'Content-Type': 'text/html' });
        res.end(body);
      });
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(srv.address() as AddressInfo).port}/index.html`;
    };
    try {
      const notFound = await serve(404, '<html><body>Not Found</body></html>');
      const io = capture();
      expect(await runProbe(notFound, { json: true }, io, {})).toBe(1);
      const doc = JSON.parse(io.out.join('\n')) as { ok: boolean; error: { code: string; message: string } };
      expect(doc.ok).toBe(false);
      expect(doc.error.code).toBe('CAMVEIL_E_CAMERA_NOT_VIDEO');
      expect(doc.error.message).toContain('not an ONVIF device service');

      const page = await serve(200, '<!DOCTYPE html><html><head><title>Router</title></head><body><p>Welcome</p></body></html>');
      const io2 = capture();
      expect(await runProbe(page, {}, io2, {})).toBe(1);
      expect(io2.err.join('\n')).toMatch(/CAMVEIL_E_CAMERA_NOT_VIDEO: http:\/\/127\.0\.0\.1:\d+\/index\.html answers HTTP but not as an ONVIF device/);
    } finally {
      for (const srv of servers) await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describeWithPeers(['ffmpeg'], 'runProbe on a simulated ONVIF camera whose stream is down', () => {
  let sim: OnvifDeviceSim;
  beforeAll(async () => {
    const port = await closedPort();
    sim = await startOnvifDevice({ password: PASSWORD, mainUri: `rtsp://127.0.0.1:${port}/videoMain`, subUri: `rtsp://127.0.0.1:${port}/videoSub` });
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('prints one JSON document with the device facts, the stream error, and no password anywhere', async () => {
    const io = capture();
    const code = await runProbe(sim.xaddr, { user: 'admin', passwordFile: passwordFile(PASSWORD), json: true, timeout: 5 }, io, {});
    expect(code).toBe(1);
    const doc = JSON.parse(io.out.join('\n')) as Record<string, unknown> & {
      device: Record<string, string>;
      main: { width: number; streamUri: string };
      sub: { height: number };
      mainStream: { ok: boolean; error: { code: string } };
    };
    expect(doc.kind).toBe('onvif');
    expect(doc.device).toMatchObject({ manufacturer: 'Foscam', model: 'FI9900P', firmware: '2.84.2.33', serialNumber: SERIAL, hardwareId: '1.4.1.10' });
    expect(doc.main.width).toBe(1920);
    expect(doc.sub.height).toBe(360);
    expect(doc.snapshotUri).toMatch(/pwd=\*\*\*/);
    expect(doc.mainStream).toMatchObject({ ok: false, error: { code: 'CAMVEIL_E_CAMERA_UNREACHABLE' } });
    expectNoSecret(io.all(), PASSWORD);
  });

  it('prints a human report and takes the password from CAMVEIL_PASSWORD', async () => {
    const io = capture();
    await runProbe(sim.xaddr, { user: 'admin', timeout: 5 }, io, { CAMVEIL_PASSWORD: PASSWORD });
    const text = io.out.join('\n');
    expect(text).toContain('device      Foscam FI9900P');
    expect(text).toContain(`serial      ${SERIAL}`);
    expect(text).toMatch(/profile .*1920x1080.*\(main\)/);
    expectNoSecret(io.all(), PASSWORD);
  });
});

describeWithPeers(['ffmpeg', 'gst-rtsp-server'], 'runProbe against a real RTSP server', () => {
  let open: RtspServer;
  let locked: RtspServer;
  let sim: OnvifDeviceSim;
  beforeAll(async () => {
    const file = motionVideo({ seconds: 10 });
    open = await startRtspServer({ file, mountPath: '/videoMain' });
    locked = await startRtspServer({ file, mountPath: '/videoMain', auth: { user: 'admin', password: PASSWORD } });
    sim = await startOnvifDevice({ password: PASSWORD, mainUri: locked.url, subUri: locked.url.replace('/videoMain', '/videoSub') });
  });
  afterAll(async () => {
    await sim.stop();
    await locked.stop();
    await open.stop();
  });

  it('reads the streams of an rtsp:// URL and suggests the Foscam sub stream', async () => {
    const io = capture();
    expect(await runProbe(open.url, { json: true, timeout: 10 }, io, {})).toBe(0);
    const doc = JSON.parse(io.out.join('\n')) as { ok: boolean; streams: Array<{ type: string; codec: string; width: number; height: number }>; suggestedSubSource: string };
    expect(doc.ok).toBe(true);
    expect(doc.streams).toContainEqual(expect.objectContaining({ type: 'video', codec: 'h264', width: 1280, height: 720 }));
    expect(doc.suggestedSubSource).toBe(open.url.replace('/videoMain', '/videoSub'));
  });

  it('authenticates with a password full of URL-special characters', async () => {
    const io = capture();
    expect(await runProbe(locked.url, { user: 'admin', passwordFile: passwordFile(PASSWORD), timeout: 10 }, io, {})).toBe(0);
    expect(io.out.join('\n')).toMatch(/stream +#0 video h264 1280x720/);
    expectNoSecret(io.all(), PASSWORD);
  });

  it('reports a wrong password as CAMERA_AUTH without printing either password', async () => {
    const io = capture();
    expect(await runProbe(locked.url, { user: 'admin', timeout: 10 }, io, { CAMVEIL_PASSWORD: 'Wr0ng&pass%' })).toBe(1);
    expect(io.err.join('\n')).toContain('CAMVEIL_E_CAMERA_AUTH');
    expectNoSecret(io.all(), 'Wr0ng&pass%');
    expectNoSecret(io.all(), PASSWORD);
  });

  it('reports an unknown path as CAMERA_NOT_VIDEO', async () => {
    const io = capture();
    expect(await runProbe(open.url.replace('/videoMain', '/nothing'), { timeout: 10 }, io, {})).toBe(1);
    expect(io.err.join('\n')).toContain('CAMVEIL_E_CAMERA_NOT_VIDEO');
  });

  it('probes an ONVIF camera end to end: device facts, then its main stream with ffprobe', async () => {
    const io = capture();
    expect(await runProbe(sim.xaddr, { user: 'admin', json: true, timeout: 10 }, io, { CAMVEIL_PASSWORD: PASSWORD })).toBe(0);
    const doc = JSON.parse(io.out.join('\n')) as { ok: boolean; mainStream: { ok: boolean; streams: Array<{ codec: string }> } };
    expect(doc.ok).toBe(true);
    expect(doc.mainStream.ok).toBe(true);
    expect(doc.mainStream.streams[0]?.codec).toBe('h264');
    expectNoSecret(io.all(), PASSWORD);
  });
});
