import { describe, expect, it } from 'vitest';
import { discoverOnvifDevices, parseProbeMatches } from '../../src/cameras/discover.js';
import { runDiscover } from '../../src/commands/discover.js';
import type { CommandIO } from '../../src/commands/io.js';

/**
 * node-onvif binds its discovery socket to all interfaces and multicasts to 239.255.255.250:3702 through the
 * default interface; it cannot be confined to loopback. These tests only need it to send and to return on
 * time: nothing is required to answer, and an empty list is a valid result.
 */
function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (s) => out.push(s), stderr: (s) => err.push(s) };
}

describe('ONVIF discovery', () => {
  it('returns within the timeout with a valid (possibly empty) JSON list', async () => {
    const io = capture();
    expect(await runDiscover({ timeout: 1, json: true }, io)).toBe(0);
    const doc = JSON.parse(io.out.join('\n')) as { devices: unknown[]; skipped: number };
    expect(Array.isArray(doc.devices)).toBe(true);
    for (const d of doc.devices) expect(d).toMatchObject({ urn: expect.any(String) as unknown, xaddrs: expect.any(Array) as unknown });
  });

  it('says so in a line when no device answers (human output)', async () => {
    const io = capture();
    expect(await runDiscover({ timeout: 1 }, io)).toBe(0);
    expect(io.out[0]).toMatch(/^(no ONVIF devices answered within 1 s|found \d+ ONVIF devices?:)$/);
  });

  it('serialises concurrent probes on node-onvif’s shared instance', async () => {
    const [a, b] = await Promise.all([discoverOnvifDevices({ timeoutMs: 1000 }), discoverOnvifDevices({ timeoutMs: 1000 })]);
    expect(Array.isArray(a.devices)).toBe(true);
    expect(Array.isArray(b.devices)).toBe(true);
  });

  it('validates probe matches: keeps well-formed ones, skips and counts the rest', () => {
    const good = {
      urn: 'urn:uuid:2419d68a-2dd2-21b2-a205-c4d6553a2b1c',
      name: 'Foscam%20IPCam',
      hardware: 'FI9900P',
      location: 'china',
      types: ['dn:NetworkVideoTransmitter'],
      xaddrs: ['http://192.168.1.20:88/onvif/device_service', 'not a url'],
      scopes: [],
    };
    const { devices, skipped } = parseProbeMatches([
      good,
      { ...good, urn: '' },
      { ...good, xaddrs: ['ftp://x/'] },
      { ...good, name: 'Evil\u001b[2Jcam' },
      null,
    ]);
    expect(skipped).toBe(3);
    expect(devices).toEqual([
      { urn: good.urn, name: 'Foscam IPCam', hardware: 'FI9900P', location: 'china', xaddrs: ['http://192.168.1.20:88/onvif/device_service'] },
      { urn: good.urn, name: 'Evil[2Jcam', hardware: 'FI9900P', location: 'china', xaddrs: ['http://192.168.1.20:88/onvif/device_service'] },
    ]);
  });
});
