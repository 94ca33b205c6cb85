import { describe, expect, it } from 'vitest';
import { describeFactsForLog, parseDeviceInformation, parseMac } from '../../src/cameras/device-facts.js';
import { foscamRtspUrls, foscamSubStreamFor, onvifDeviceServiceUrl } from '../../src/cameras/foscam.js';
import { classifyOnvifError, type OnvifReport } from '../../src/cameras/onvif.js';
import { classifyFfprobeError } from '../../src/cameras/probe.js';
import { filePathOf, resolveCameraSource, sourceKind, withCredentials } from '../../src/cameras/source.js';
import { cameraSchema } from '../../src/config/schema.js';
import { CamveilError } from '../../src/errors.js';
import { redactUrl } from '../../src/redact.js';

const NASTY = 'p@ss:w/rd#%?&= +!é';

function camera(extra: Record<string, unknown>) {
  return cameraSchema.parse({ id: 'door', credentials: { username: 'admin', passwordEnv: 'X' }, ...extra });
}

function caught(fn: () => unknown): CamveilError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CamveilError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('Foscam conventions', () => {
  it('maps onvif://host to the device service on port 88', () => {
    expect(onvifDeviceServiceUrl('onvif://192.168.1.20')).toBe('http://192.168.1.20:88/onvif/device_service');
    expect(onvifDeviceServiceUrl('onvif://cam.local:8080')).toBe('http://cam.local:8080/onvif/device_service');
    expect(onvifDeviceServiceUrl('http://10.0.0.5:88/onvif/device_service')).toBe('http://10.0.0.5:88/onvif/device_service');
    expect(caught(() => onvifDeviceServiceUrl('rtsp://cam/videoMain')).code).toBe('CAMVEIL_E_USAGE');
  });

  it('names the RTSP streams of an RTSP-only setup and suggests videoSub for videoMain', () => {
    expect(foscamRtspUrls('192.168.1.20')).toEqual({ main: 'rtsp://192.168.1.20:88/videoMain', sub: 'rtsp://192.168.1.20:88/videoSub' });
    expect(foscamRtspUrls('cam', 554).sub).toBe('rtsp://cam:554/videoSub');
    expect(foscamSubStreamFor('rtsp://192.168.1.20:88/videoMain')).toBe('rtsp://192.168.1.20:88/videoSub');
    expect(foscamSubStreamFor('rtsp://192.168.1.20:554/live/ch0')).toBeUndefined();
    expect(foscamSubStreamFor('http://192.168.1.20:88/videoMain')).toBeUndefined();
  });
});

describe('credentials in stream URLs', () => {
  it('percent-encodes every special character so ffmpeg decodes the exact password', () => {
    const url = withCredentials('rtsp://192.168.1.20:88/videoMain', 'ad min', NASTY);
    const u = new URL(url);
    expect(decodeURIComponent(u.username)).toBe('ad min');
    expect(decodeURIComponent(u.password)).toBe(NASTY);
    expect(u.host).toBe('192.168.1.20:88');
    expect(u.pathname).toBe('/videoMain');
  });

  it('leaves the URL alone without a user, and sends a user without password as is', () => {
    expect(withCredentials('rtsp://cam/x', undefined, 'pw')).toBe('rtsp://cam/x');
    expect(withCredentials('rtsp://cam/x', 'admin', '')).toBe('rtsp://admin@cam/x');
  });

  it('redacts the credentials it inserted', () => {
    const shown = redactUrl(withCredentials('rtsp://cam:88/videoMain', 'admin', NASTY));
    expect(shown).toBe('rtsp://***@cam:88/videoMain');
    expect(shown).not.toContain(encodeURIComponent(NASTY));
  });

  it('tells source kinds and file paths apart', () => {
    expect(sourceKind('file:/data/a.mp4')).toBe('file');
    expect(sourceKind('rtsps://cam/x')).toBe('rtsp');
    expect(sourceKind('onvif://cam')).toBe('onvif');
    expect(sourceKind('http://cam:88/onvif/device_service')).toBe('onvif');
    expect(filePathOf('file:/data/a.mp4')).toBe('/data/a.mp4');
    expect(filePathOf('file:///data/a.mp4')).toBe('/data/a.mp4');
    expect(filePathOf('file:clips/a.mp4')).toBe('clips/a.mp4');
  });
});

describe('resolveCameraSource', () => {
  const report: OnvifReport = {
    facts: { manufacturer: 'Foscam', model: 'FI9900P', serialNumber: 'SN1' },
    profiles: [],
    main: { token: 'a', name: 'main', encoding: 'H264', width: 1920, height: 1080, streamUri: 'rtsp://cam:88/videoMain' },
    sub: { token: 'b', name: 'sub', encoding: 'H264', width: 640, height: 360, streamUri: 'rtsp://cam:88/videoSub' },
  };

  it('gives a file source as its path', async () => {
    const r = await resolveCameraSource(camera({ source: 'file:/data/a.mp4', credentials: undefined }), undefined);
    expect(r).toEqual({ kind: 'file', main: '/data/a.mp4', display: { main: '/data/a.mp4' } });
  });

  it('puts credentials into an rtsp source and keeps them out of display', async () => {
    const r = await resolveCameraSource(camera({ source: 'rtsp://cam:88/videoMain', subSource: 'rtsp://cam:88/videoSub' }), NASTY);
    expect(r.kind).toBe('rtsp');
    expect(decodeURIComponent(new URL(r.main).password)).toBe(NASTY);
    expect(decodeURIComponent(new URL(r.sub!).password)).toBe(NASTY);
    expect(r.display).toEqual({ main: 'rtsp://cam:88/videoMain', sub: 'rtsp://cam:88/videoSub' });
    expect(JSON.stringify(r.display)).not.toContain('p%40');
  });

  it('asks an ONVIF device (onvif:// → port 88) for main and sub, and lets subSource override the sub', async () => {
    const asked: Array<{ xaddr: string; user?: string }> = [];
    const queryOnvif = (xaddr: string, creds?: { user: string; password: string }) => {
      asked.push({ xaddr, user: creds?.user });
      return Promise.resolve(report);
    };
    const r = await resolveCameraSource(camera({ source: 'onvif://cam' }), 'pw1234', { queryOnvif });
    expect(asked).toEqual([{ xaddr: 'http://cam:88/onvif/device_service', user: 'admin' }]);
    expect(r.kind).toBe('onvif');
    expect(r.main).toBe('rtsp://admin:pw1234@cam:88/videoMain');
    expect(r.sub).toBe('rtsp://admin:pw1234@cam:88/videoSub');
    expect(r.display).toEqual({ main: 'rtsp://cam:88/videoMain', sub: 'rtsp://cam:88/videoSub' });
    expect(r.facts?.model).toBe('FI9900P');
    // The main stream's size goes with it: the device-model rules need a minimum resolution.
    expect(r.mainSize).toEqual({ width: 1920, height: 1080 });

    const o = await resolveCameraSource(camera({ source: 'onvif://cam', subSource: 'rtsp://cam:88/other' }), 'pw1234', { queryOnvif });
    expect(o.sub).toBe('rtsp://admin:pw1234@cam:88/other');
    expect(o.display.sub).toBe('rtsp://cam:88/other');
  });

  it('refuses an ONVIF URL as subSource', async () => {
    await expect(resolveCameraSource(camera({ source: 'rtsp://cam/x', subSource: 'onvif://cam' }), 'pw')).rejects.toMatchObject({
      code: 'CAMVEIL_E_CONFIG_INVALID',
    });
  });
});

describe('device facts', () => {
  const xaddr = 'http://192.168.1.20:88/onvif/device_service';

  it('accepts node-onvif text nodes, with or without attributes, and drops empty ones', () => {
    expect(
      parseDeviceInformation(
        { $: { 'xmlns:tds': 'x' }, Manufacturer: 'Foscam', Model: { _: 'FI9900P', $: { a: '1' } }, FirmwareVersion: '', SerialNumber: 'SN' },
        xaddr,
      ),
    ).toEqual({ manufacturer: 'Foscam', model: 'FI9900P', serialNumber: 'SN' });
  });

  it('refuses a malformed reply naming every bad field and the device, not the values', () => {
    const e = caught(() => parseDeviceInformation({ Manufacturer: ['a', 'b'], SerialNumber: 'SN-\u001b[2J', Extra: 'x' }, xaddr));
    expect(e.code).toBe('CAMVEIL_E_CAMERA_PROTOCOL');
    expect(e.message).toContain(xaddr);
    expect(e.message).toContain('GetDeviceInformation.Manufacturer');
    expect(e.message).toContain('GetDeviceInformation.SerialNumber');
    expect(e.message).not.toContain('SN-');
  });

  it('normalises MAC addresses and refuses what is not one', () => {
    expect(parseMac('C4-D6-55-3A-2B-1C', xaddr)).toBe('c4:d6:55:3a:2b:1c');
    expect(caught(() => parseMac('not-a-mac', xaddr)).code).toBe('CAMVEIL_E_CAMERA_PROTOCOL');
  });

  it('logs a pseudonym instead of the serial number or MAC', () => {
    const calls: string[] = [];
    const pseudo = (kind: string, value: string) => {
      calls.push(kind);
      return `p-${kind}-${value.length}`;
    };
    const facts = { manufacturer: 'Foscam', model: 'FI9900P', firmware: '2.84', serialNumber: 'SN12345', hardwareId: 'HW', mac: 'c4:d6:55:3a:2b:1c' };
    const logged = describeFactsForLog(facts, pseudo);
    expect(logged).toEqual({ manufacturer: 'Foscam', model: 'FI9900P', firmware: '2.84', device: 'p-serial-7' });
    expect(JSON.stringify(logged)).not.toMatch(/SN12345|c4:d6|HW/);
    expect(describeFactsForLog({ model: 'X', mac: 'c4:d6:55:3a:2b:1c' }, pseudo).device).toBe('p-mac-17');
    expect(describeFactsForLog({ model: 'X' }, pseudo)).toEqual({ model: 'X' });
    expect(calls).toEqual(['serial', 'mac']);
  });
});

describe('error classification', () => {
  const shown = 'rtsp://***@cam:88/videoMain';
  const pw = 'hunter2-secret';
  const url = `rtsp://admin:${pw}@cam:88/videoMain`;
  it.each([
    [`[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized\n${url}: Server returned 401 Unauthorized (authorization failed)`, 'CAMVEIL_E_CAMERA_AUTH'],
    [`[tcp @ 0x1] Connection to tcp://cam:88 failed: Connection refused\n${url}: Connection refused`, 'CAMVEIL_E_CAMERA_UNREACHABLE'],
    [`${url}: Connection timed out`, 'CAMVEIL_E_CAMERA_UNREACHABLE'],
    [`[rtsp @ 0x1] method DESCRIBE failed: 404 Not Found\n${url}: Server returned 404 Not Found`, 'CAMVEIL_E_CAMERA_NOT_VIDEO'],
    [`${url}: Invalid data found when processing input`, 'CAMVEIL_E_CAMERA_NOT_VIDEO'],
    [`${url}: Something new`, 'CAMVEIL_E_CAMERA_PROTOCOL'],
  ])('classifies ffprobe stderr %#', (stderr, code) => {
    const e = classifyFfprobeError(stderr, shown, pw);
    expect(e.code).toBe(code);
    expect(e.message).toContain(shown);
    expect(e.message).not.toContain(pw);
  });

  it.each([
    ['Failed to initialize the device: Error: 400 Bad Request - Sender not Authorized', 'CAMVEIL_E_CAMERA_AUTH'],
    ['Failed to initialize the device: Error: 401 Unauthorized', 'CAMVEIL_E_CAMERA_AUTH'],
    ['Failed to initialize the device: Error: Network Error: connect ECONNREFUSED 127.0.0.1:88', 'CAMVEIL_E_CAMERA_UNREACHABLE'],
    ['Failed to initialize the device: Error: Network Error: socket hang up', 'CAMVEIL_E_CAMERA_UNREACHABLE'],
    ['Failed to initialize the device: Error: 404 Not Found', 'CAMVEIL_E_CAMERA_NOT_VIDEO'],
    ['Failed to initialize the device: Error: The device seems to not support the GetCapabilities() method.', 'CAMVEIL_E_CAMERA_NOT_VIDEO'],
    ['Failed to initialize the device: Error: Unclosed root tag\nLine: 0\nColumn: 200\nChar: ', 'CAMVEIL_E_CAMERA_PROTOCOL'],
    ["Failed to initialize the device: TypeError: Cannot read properties of undefined (reading 'token')", 'CAMVEIL_E_CAMERA_PROTOCOL'],
  ])('classifies node-onvif error "%s"', (message, code) => {
    const e = classifyOnvifError(new Error(message), 'http://cam:88/onvif/device_service', 5000);
    expect(e.code).toBe(code);
    expect(e.message).toContain('http://cam:88/onvif/device_service');
  });
});
