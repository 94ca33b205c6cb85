import { DEFAULT_DISCOVERY_MS, discoverOnvifDevices } from '../cameras/discover.js';
import { asCamveilError, exitCodeFor } from '../errors.js';
import type { CommandIO } from './io.js';

export interface DiscoverCommandOptions {
  /** Seconds to listen; default 3. Below 1 s is raised to 1 s. */
  timeout?: number;
  json?: boolean;
}

/**
 * `camveil discover`: lists ONVIF devices on the local network. Finding none is a normal result (exit 0);
 * exit 1 only when the UDP socket cannot be used.
 */
export async function runDiscover(opts: DiscoverCommandOptions, io: CommandIO): Promise<number> {
  const timeoutMs = opts.timeout === undefined ? DEFAULT_DISCOVERY_MS : Math.round(opts.timeout * 1000);
  try {
    const { devices, skipped } = await discoverOnvifDevices({ timeoutMs });
    if (opts.json === true) {
      io.stdout(JSON.stringify({ devices, skipped }, null, 2));
      return 0;
    }
    if (devices.length === 0) {
      io.stdout(`no ONVIF devices answered within ${Math.max(1000, timeoutMs) / 1000} s`);
    } else {
      io.stdout(`found ${devices.length} ONVIF device${devices.length === 1 ? '' : 's'}:`);
      for (const d of devices) {
        const label = [d.name || '(no name)', d.hardware === '' ? '' : `hardware ${d.hardware}`].filter((x) => x !== '').join(', ');
        io.stdout(`  ${label}`);
        for (const x of d.xaddrs) io.stdout(`    ${x}`);
      }
    }
    if (skipped > 0) io.stderr(`ignored ${skipped} malformed discovery answer${skipped === 1 ? '' : 's'}`);
    return 0;
  } catch (error) {
    const e = asCamveilError(error);
    if (opts.json === true) io.stdout(JSON.stringify({ devices: [], error: { code: e.code, message: e.message } }, null, 2));
    io.stderr(`camveil: ${e.code}: ${e.message}`);
    return exitCodeFor(e);
  }
}
