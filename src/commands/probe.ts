import type { StreamInfo, ProbeReport } from '../cameras/probe.js';
import { probeCamera } from '../cameras/probe.js';
import { scrub, type OnvifProfile } from '../cameras/onvif.js';
import { readPasswordFile } from '../config/secrets.js';
import { CamveilError, asCamveilError, exitCodeFor } from '../errors.js';
import { redactText, redactUrl } from '../redact.js';
import type { CommandIO } from './io.js';

export interface ProbeCommandOptions {
  user?: string;
  passwordFile?: string;
  json?: boolean;
  /** Seconds. */
  timeout?: number;
}

const PROBE_SCHEMES = ['rtsp:', 'rtsps:', 'http:', 'https:', 'onvif:'];

/**
 * `camveil probe URL`: what a camera is and whether camveil can read it. Exit 0 when the camera and its
 * (main) stream answer, 1 when not, 2 for a bad URL or an unreadable password file. The password comes
 * from --password-file or CAMVEIL_PASSWORD and is never printed: every line is scrubbed of it as well.
 */
export async function runProbe(url: string, opts: ProbeCommandOptions, io: CommandIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let password: string | undefined;
  const out = (line: string) => io.stdout(scrub(line, password));
  const err = (line: string) => io.stderr(scrub(line, password));
  try {
    checkUrl(url);
    password = opts.passwordFile !== undefined ? readPasswordFile(opts.passwordFile, '--password-file') : nonEmpty(env.CAMVEIL_PASSWORD);
    if (password !== undefined && opts.user === undefined) {
      throw new CamveilError('CAMVEIL_E_USAGE', 'a password was given but no --user');
    }
    const creds = opts.user === undefined ? undefined : { user: opts.user, password: password ?? '' };
    const report = await probeCamera(url, creds, opts.timeout === undefined ? {} : { timeoutMs: Math.round(opts.timeout * 1000) });
    const ok = report.mainStream === undefined || report.mainStream.ok;
    if (opts.json === true) out(JSON.stringify({ ok, ...report }, null, 2));
    else for (const line of describeReport(report)) out(line);
    if (report.mainStream !== undefined && !report.mainStream.ok) {
      err(`camveil: ${report.mainStream.error.code}: ${report.mainStream.error.message}`);
      return 1;
    }
    return 0;
  } catch (error) {
    const e = asCamveilError(error);
    const message = scrub(e.message, password);
    if (opts.json === true) out(JSON.stringify({ ok: false, url: redactUrl(url), error: { code: e.code, message } }, null, 2));
    err(`camveil: ${e.code}: ${message}`);
    return exitCodeFor(e);
  }
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CamveilError('CAMVEIL_E_USAGE', `not a URL: ${redactText(url)}`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new CamveilError('CAMVEIL_E_USAGE', 'put no credentials in the URL: use --user and --password-file (or CAMVEIL_PASSWORD)');
  }
  if (!PROBE_SCHEMES.includes(parsed.protocol)) {
    throw new CamveilError('CAMVEIL_E_USAGE', `cannot probe ${parsed.protocol} URLs: give rtsp://…, http://host:port/onvif/device_service or onvif://host`);
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function describeStream(s: StreamInfo): string {
  const size = s.width !== undefined && s.height !== undefined ? ` ${s.width}x${s.height}` : '';
  const fps = s.fps !== undefined ? ` @ ${s.fps} fps` : '';
  return `#${s.index} ${s.type} ${s.codec}${size}${fps}`;
}

function describeProfile(p: OnvifProfile): string {
  return `${p.name || p.token}: ${p.encoding} ${p.width}x${p.height}${p.fps !== undefined ? ` @ ${p.fps} fps` : ''}  ${p.streamUri}`;
}

/** The human-readable report: one fact per line, label first. */
export function describeReport(r: ProbeReport): string[] {
  const lines = [`camera      ${r.url} (${r.kind === 'rtsp' ? 'RTSP' : 'ONVIF'})`];
  if (r.streams !== undefined) for (const s of r.streams) lines.push(`stream      ${describeStream(s)}`);
  if (r.suggestedSubSource !== undefined) lines.push(`sub stream  ${r.suggestedSubSource} (Foscam convention; set it as subSource)`);
  const d = r.device;
  if (d !== undefined) {
    lines.push(`device      ${[d.manufacturer, d.model].filter((x) => x !== undefined).join(' ') || 'unknown'}`);
    if (d.firmware !== undefined) lines.push(`firmware    ${d.firmware}`);
    if (d.serialNumber !== undefined) lines.push(`serial      ${d.serialNumber}`);
    if (d.hardwareId !== undefined) lines.push(`hardware    ${d.hardwareId}`);
    if (d.mac !== undefined) lines.push(`mac         ${d.mac}`);
  }
  for (const p of r.profiles ?? []) {
    const role = p === r.main ? ' (main)' : p === r.sub ? ' (sub)' : '';
    lines.push(`profile     ${describeProfile(p)}${role}`);
  }
  if (r.snapshotUri !== undefined) lines.push(`snapshot    ${r.snapshotUri}`);
  if (r.mainStream !== undefined) {
    if (r.mainStream.ok) for (const s of r.mainStream.streams) lines.push(`main stream ${describeStream(s)}`);
    else lines.push(`main stream not readable: ${r.mainStream.error.code}: ${r.mainStream.error.message}`);
  }
  return lines;
}
