import onvif from 'node-onvif';
import { z } from 'zod';
import { monotonicMs } from '../clock.js';
import { CamveilError } from '../errors.js';
import { redactText, redactUrl } from '../redact.js';
import { parseDeviceInformation, parseMac, protocolError, zodIssues, type DeviceFacts } from './device-facts.js';

/** One video profile of an ONVIF device. URIs carry no credentials (userinfo removed, secret query values masked). */
export interface OnvifProfile {
  token: string;
  name: string;
  /** `H264`, `H265`, `JPEG` … as the device names it. */
  encoding: string;
  width: number;
  height: number;
  fps?: number;
  streamUri: string;
  snapshotUri?: string;
}

export interface OnvifReport {
  facts: DeviceFacts;
  /** Video profiles that have an RTSP stream URI, in the device's order. */
  profiles: OnvifProfile[];
  /** The profile with the highest resolution (the first of equals). */
  main: OnvifProfile;
  /** The profile with the lowest resolution, when it is a different stream from `main`. */
  sub?: OnvifProfile;
}

export interface OnvifCredentials {
  user: string;
  password: string;
}

export interface OnvifQueryOptions {
  /** Deadline for the whole exchange; default 10 000 ms. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** node-onvif builds its own profile objects (device.js `_mediaGetProfiles`); NaN marks a missing number. */
const finiteOrUndefined = z.number().transform((n) => (Number.isFinite(n) && n > 0 ? n : undefined));
const profileSchema = z.looseObject({
  token: z
    .string()
    .min(1, 'empty profile token')
    .regex(/^[^\p{Cc}]*$/u, 'contains control characters'),
  // Printed to the user's terminal: drop control characters a hostile device could use as escapes.
  name: z.unknown().transform((v) => (typeof v === 'string' ? v.replace(/\p{Cc}/gu, '') : '')),
  snapshot: z.unknown(),
  stream: z.looseObject({ rtsp: z.unknown() }),
  video: z.looseObject({
    encoder: z
      .looseObject({
        resolution: z.strictObject({
          width: z.number().int('not a number').positive('not a positive width'),
          height: z.number().int('not a number').positive('not a positive height'),
        }),
        framerate: finiteOrUndefined,
        encoding: z
          .string()
          .min(1, 'no encoding')
          .transform((v) => v.replace(/\p{Cc}/gu, '')),
      })
      .nullable(),
  }),
});

/**
 * Asks an ONVIF device (device service URL `xaddr`, plain HTTP) for its identity, video profiles and stream
 * URIs. Failures become CamveilError: CAMERA_UNREACHABLE (refused, timed out, no route), CAMERA_AUTH
 * (HTTP 401 or a NotAuthorized fault), CAMERA_NOT_VIDEO (answers, but not as ONVIF, or has no RTSP video
 * profile), CAMERA_PROTOCOL (malformed reply), USAGE (a URL or credentials node-onvif cannot use).
 * Messages name the device by redacted URL and never hold the password.
 */
export async function queryOnvifDevice(xaddr: string, creds?: OnvifCredentials, opts: OnvifQueryOptions = {}): Promise<OnvifReport> {
  const shown = redactUrl(xaddr);
  checkXaddr(xaddr);
  if (creds !== undefined) checkCredentials(creds, shown);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const password = creds?.password;

  const device = new onvif.OnvifDevice({
    xaddr,
    // node-onvif pastes the user name into the SOAP header unescaped; the password only enters the digest.
    ...(creds === undefined ? {} : { user: xmlEscape(creds.user), pass: creds.password }),
  });

  // A time limit: elapsed time, which a step of the wall clock does not move (src/clock.ts).
  const deadline = monotonicMs() + timeoutMs;
  try {
    await withDeadline(device.init(), timeoutMs);
  } catch (error) {
    throw classifyOnvifError(error, xaddr, timeoutMs, password);
  }
  const facts = parseDeviceInformation(device.getInformation(), xaddr);
  const mac = await readMac(device, xaddr, Math.max(1, deadline - monotonicMs()));
  if (mac !== undefined) facts.mac = mac;

  const profiles = parseProfiles(device.getProfileList(), xaddr);
  if (profiles.length === 0) {
    throw new CamveilError('CAMVEIL_E_CAMERA_NOT_VIDEO', `${shown} has no video profile with an RTSP stream URI`, { where: shown });
  }
  const area = (p: OnvifProfile) => p.width * p.height;
  let main = profiles[0]!;
  let sub = profiles[0]!;
  for (const p of profiles) {
    if (area(p) > area(main)) main = p;
    if (area(p) < area(sub)) sub = p;
  }
  return sub.streamUri !== main.streamUri ? { facts, profiles, main, sub } : { facts, profiles, main };
}

function checkXaddr(xaddr: string): void {
  let url: URL;
  try {
    url = new URL(xaddr);
  } catch {
    throw new CamveilError('CAMVEIL_E_USAGE', `not a URL: ${redactUrl(xaddr)}`);
  }
  if (url.protocol === 'https:') {
    // node-onvif 0.1.7 always uses node:http; an https: xaddr fails deep inside with "Protocol not supported".
    throw new CamveilError('CAMVEIL_E_USAGE', `${redactUrl(xaddr)}: ONVIF over HTTPS is not supported; use the camera's plain HTTP port`);
  }
  if (url.protocol !== 'http:') throw new CamveilError('CAMVEIL_E_USAGE', `${redactUrl(xaddr)} is not an http:// ONVIF device service URL`);
  if (url.username !== '' || url.password !== '') {
    throw new CamveilError('CAMVEIL_E_USAGE', `${redactUrl(xaddr)}: give credentials separately, not in the URL`);
  }
}

function checkCredentials(creds: OnvifCredentials, shown: string): void {
  // node-onvif's service constructors throw on these (soap.js isInvalidValue); say so clearly instead.
  const printableAscii = /^[\x20-\x7e]*$/;
  for (const [what, value] of [['user name', creds.user], ['password', creds.password]] as const) {
    if (!printableAscii.test(value) || /[<>]/.test(value)) {
      throw new CamveilError(
        'CAMVEIL_E_USAGE',
        `${shown}: the ONVIF ${what} must be printable ASCII without "<" or ">" (a limit of node-onvif); the RTSP URL can still be used directly`,
        { where: shown },
      );
    }
  }
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Rejects with a timeout marker when `promise` has not settled after `ms`; the loser's result is dropped. */
async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

class DeadlineError extends Error {
  constructor() {
    super('deadline');
  }
}

/** GetNetworkInterfaces is optional for us: a device that refuses it simply has no MAC in its facts. */
async function readMac(device: InstanceType<typeof onvif.OnvifDevice>, xaddr: string, ms: number): Promise<string | undefined> {
  let data: unknown;
  try {
    data = (await withDeadline(device.services.device.getNetworkInterfaces(), ms)).data;
  } catch {
    return undefined;
  }
  const response = (data as { GetNetworkInterfacesResponse?: { NetworkInterfaces?: unknown } } | undefined)?.GetNetworkInterfacesResponse;
  const interfaces = ([] as unknown[]).concat(response?.NetworkInterfaces ?? []);
  for (const nic of interfaces) {
    const hw = (nic as { Info?: { HwAddress?: unknown } } | undefined)?.Info?.HwAddress;
    if (hw !== undefined) return parseMac(hw, xaddr);
  }
  return undefined;
}

function parseProfiles(raw: unknown, xaddr: string): OnvifProfile[] {
  const parsed = z.array(profileSchema).safeParse(raw);
  if (!parsed.success) throw protocolError(xaddr, zodIssues(parsed.error, 'GetProfiles'), parsed.error);
  const out: OnvifProfile[] = [];
  const issues: string[] = [];
  parsed.data.forEach((p) => {
    const encoder = p.video.encoder;
    const rtsp = uriText(p.stream.rtsp);
    if (encoder === null || rtsp === undefined) return; // audio/metadata-only profile, or no RTSP URI
    const streamUri = cleanUri(rtsp, ['rtsp:', 'rtsps:']);
    if (streamUri === undefined) {
      issues.push(`GetStreamUri[${p.token}]: not an rtsp:// URI`);
      return;
    }
    const snapshotText = uriText(p.snapshot);
    const snapshotUri = snapshotText === undefined ? undefined : cleanUri(snapshotText, ['http:', 'https:']);
    if (snapshotText !== undefined && snapshotUri === undefined) issues.push(`GetSnapshotUri[${p.token}]: not an http(s):// URI`);
    out.push({
      token: p.token,
      name: p.name,
      encoding: encoder.encoding,
      width: encoder.resolution.width,
      height: encoder.resolution.height,
      ...(encoder.framerate === undefined ? {} : { fps: encoder.framerate }),
      streamUri,
      ...(snapshotUri === undefined ? {} : { snapshotUri }),
    });
  });
  if (issues.length > 0) throw protocolError(xaddr, issues);
  return out;
}

function uriText(v: unknown): string | undefined {
  const s = typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { _?: unknown })._ === 'string' ? (v as { _: string })._ : undefined;
  return s === undefined || s.trim() === '' ? undefined : s.trim();
}

/**
 * A device URI without credentials: userinfo removed, secret query values (Foscam's usr/pwd) masked.
 * Undefined when it is not a URL of the expected schemes.
 */
function cleanUri(text: string, schemes: readonly string[]): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (!schemes.includes(url.protocol) || url.hostname === '') return undefined;
  url.username = '';
  url.password = '';
  return redactUrl(url.toString());
}

/** Maps node-onvif's plain Error messages (it has no codes) to our codes. */
export function classifyOnvifError(error: unknown, xaddr: string, timeoutMs: number, password?: string): CamveilError {
  const shown = redactUrl(xaddr);
  if (error instanceof CamveilError) return error;
  if (error instanceof DeadlineError) {
    return new CamveilError('CAMVEIL_E_CAMERA_UNREACHABLE', `${shown} did not answer within ${timeoutMs / 1000} s`, { where: shown });
  }
  const raw = error instanceof Error ? error.message : String(error);
  const detail = scrub(raw.replace(/^Failed to initialize the device: (Error: )?/, '').split('\n')[0] ?? '', password);
  const make = (code: 'CAMVEIL_E_CAMERA_UNREACHABLE' | 'CAMVEIL_E_CAMERA_AUTH' | 'CAMVEIL_E_CAMERA_NOT_VIDEO' | 'CAMVEIL_E_CAMERA_PROTOCOL', message: string) =>
    new CamveilError(code, `${shown} ${message}`, { where: shown, cause: error });

  if (/\b401\b|not ?authori[sz]ed|unauthori[sz]ed|FailedAuthentication|InvalidSecurity/i.test(raw)) {
    return make('CAMVEIL_E_CAMERA_AUTH', `refused the credentials (${detail})`);
  }
  if (/Network Error|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|socket hang up/i.test(raw)) {
    return make('CAMVEIL_E_CAMERA_UNREACHABLE', `does not answer (${detail})`);
  }
  const status = /(?:^|: )(\d{3}) /.exec(raw.replace(/^Failed to initialize the device: (Error: )?/, ''));
  if (status !== null && /^4\d\d$/.test(status[1]!)) {
    return make('CAMVEIL_E_CAMERA_NOT_VIDEO', `answered HTTP ${detail}: it is not an ONVIF device service (Foscam: http://host:88/onvif/device_service)`);
  }
  if (/seems to not support the GetCapabilities\(\)/.test(raw)) {
    return make('CAMVEIL_E_CAMERA_NOT_VIDEO', 'answers HTTP but not as an ONVIF device (no GetCapabilitiesResponse)');
  }
  if (/Line: \d+\s+Column: \d+/.test(raw)) {
    return make('CAMVEIL_E_CAMERA_PROTOCOL', `sent a reply that is not well-formed XML (${detail})`);
  }
  if (/TypeError|Cannot read properties/.test(raw)) {
    return make('CAMVEIL_E_CAMERA_PROTOCOL', `sent an ONVIF reply that lacks required elements (${detail})`);
  }
  return make('CAMVEIL_E_CAMERA_PROTOCOL', `sent an unexpected ONVIF reply (${detail})`);
}

/** Removes URL credentials and, as a last line of defence, the password itself (plain and URL-encoded). */
export function scrub(text: string, password?: string): string {
  let out = redactText(text);
  if (password !== undefined && password.length >= 3) {
    for (const form of new Set([password, encodeURIComponent(password)])) out = out.split(form).join('***');
  }
  return out;
}
