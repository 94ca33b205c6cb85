import onvif from 'node-onvif';
import { z } from 'zod';
import { CamveilError } from '../errors.js';

/** An ONVIF device that answered a WS-Discovery Probe. Text comes from the network: control characters are removed. */
export interface DiscoveredDevice {
  /** WS-Addressing endpoint, often `urn:uuid:…` (may embed the MAC: not for logs). */
  urn: string;
  /** From the `onvif://www.onvif.org/name/…` scope; may be empty. */
  name: string;
  /** From the `onvif://www.onvif.org/hardware/…` scope; may be empty. */
  hardware: string;
  location?: string;
  /** Device service URLs, e.g. `http://192.168.1.20:88/onvif/device_service`. */
  xaddrs: string[];
}

export interface DiscoverOptions {
  /** How long to listen for answers; default 3000 ms, at least 1000 ms. */
  timeoutMs?: number;
}

export const DEFAULT_DISCOVERY_MS = 3000;
const MIN_DISCOVERY_MS = 1000;

const text = z
  .unknown()
  .transform((v) => (typeof v === 'string' ? decodeScope(v).replace(/\p{Cc}/gu, '').trim() : ''));
const probeMatch = z.looseObject({
  urn: z.string().min(1).max(512),
  name: text,
  hardware: text,
  location: text,
  xaddrs: z.array(z.string()).min(1),
});

/** Scope values are URI segments: `Foscam%20IPCam` → `Foscam IPCam`. */
function decodeScope(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/**
 * Validates node-onvif's probe records (external input from anyone on the LAN). Records without a URN or
 * without an http(s) device service URL are skipped and counted, never fatal.
 */
export function parseProbeMatches(raw: readonly unknown[]): { devices: DiscoveredDevice[]; skipped: number } {
  const devices: DiscoveredDevice[] = [];
  let skipped = 0;
  for (const r of raw) {
    const parsed = probeMatch.safeParse(r);
    const xaddrs = parsed.success ? parsed.data.xaddrs.filter(isHttpUrl) : [];
    if (!parsed.success || xaddrs.length === 0) {
      skipped++;
      continue;
    }
    const d = parsed.data;
    devices.push({
      urn: d.urn.replace(/\p{Cc}/gu, ''),
      name: d.name,
      hardware: d.hardware,
      ...(d.location === '' ? {} : { location: d.location }),
      xaddrs,
    });
  }
  return { devices, skipped };
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

// node-onvif's discovery state (socket, timers, results) lives on its one shared instance: one probe at a time.
let queue: Promise<unknown> = Promise.resolve();

/**
 * Multicasts WS-Discovery Probes (239.255.255.250:3702) through node-onvif and lists the devices that answer
 * within the timeout. An empty list is a normal result. node-onvif binds its UDP socket to all interfaces
 * and sends through the system's default multicast interface; it offers no way to choose either.
 */
export function discoverOnvifDevices(opts: DiscoverOptions = {}): Promise<{ devices: DiscoveredDevice[]; skipped: number }> {
  const run = queue.then(
    () => probeOnce(Math.max(MIN_DISCOVERY_MS, opts.timeoutMs ?? DEFAULT_DISCOVERY_MS)),
    () => probeOnce(Math.max(MIN_DISCOVERY_MS, opts.timeoutMs ?? DEFAULT_DISCOVERY_MS)),
  );
  queue = run.catch(() => undefined);
  return run;
}

async function probeOnce(waitMs: number): Promise<{ devices: DiscoveredDevice[]; skipped: number }> {
  // node-onvif sends rounds of three Probes 150 ms apart and stops listening after _DISCOVERY_WAIT. If it
  // stops while a send is still queued, the next send runs on a closed (null) socket and throws in a timer,
  // which would crash the process: so send only as many rounds as finish well inside the wait.
  onvif._DISCOVERY_INTERVAL = 150;
  onvif._DISCOVERY_RETRY_MAX = Math.min(3, Math.max(1, Math.floor((waitMs - 300) / 450)));
  onvif._DISCOVERY_WAIT = waitMs;
  let timer: NodeJS.Timeout | undefined;
  // Belt and braces: node-onvif has no overall deadline of its own if its wait timer never fires.
  const guard = new Promise<unknown[]>((resolve) => {
    timer = setTimeout(() => {
      void onvif.stopProbe().catch(() => undefined);
      resolve([]);
    }, waitMs + 2000);
  });
  try {
    const raw = await Promise.race([onvif.startProbe(), guard]);
    return parseProbeMatches(Array.isArray(raw) ? raw : []);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : 'error');
    throw new CamveilError('CAMVEIL_E_DISCOVERY_FAILED', `WS-Discovery could not use the network (${code})`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}
