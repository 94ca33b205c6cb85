import { spawn } from 'node:child_process';
import { z } from 'zod';
import { matchFfmpegFailure } from './ffmpeg-errors.js';
import { CamveilError, asCamveilError, type ErrorCode } from '../errors.js';
import { redactUrl } from '../redact.js';
import type { DeviceFacts } from './device-facts.js';
import { ffmpegMajorVersion, findFfmpeg } from './ffmpeg-binary.js';
import { foscamSubStreamFor, onvifDeviceServiceUrl } from './foscam.js';
import { queryOnvifDevice, scrub, type OnvifCredentials, type OnvifProfile } from './onvif.js';
import { credentialsForStream, withCredentials } from './source.js';
import { pipedSourceArgs, sourceListText } from './source-pipe.js';

/** One stream as ffprobe reports it. */
export interface StreamInfo {
  index: number;
  type: string;
  codec: string;
  width?: number;
  height?: number;
  fps?: number;
}

/** What `camveil probe` found. URLs are redacted; device facts are for the user's own terminal, not logs. */
export interface ProbeReport {
  kind: 'rtsp' | 'onvif';
  /** The probed URL, redacted. */
  url: string;
  /** rtsp: the streams of the URL itself. */
  streams?: StreamInfo[];
  /** rtsp: Foscam's `/videoSub` when the URL is a Foscam `/videoMain`. */
  suggestedSubSource?: string;
  /** onvif: identity, profiles, chosen main/sub and snapshot URI. */
  device?: DeviceFacts;
  profiles?: OnvifProfile[];
  main?: OnvifProfile;
  sub?: OnvifProfile;
  snapshotUri?: string;
  /** onvif: ffprobe of the main stream; an error here means the device answers but its stream does not. */
  mainStream?: { ok: true; streams: StreamInfo[] } | { ok: false; error: { code: ErrorCode; message: string } };
  /** onvif: the main stream names another host than the device's, so it was probed without credentials. */
  credentialsWithheld?: string;
}

export interface ProbeOptions {
  /** Per step (ONVIF exchange, each ffprobe); default 10 000 ms. */
  timeoutMs?: number;
  /** Send the credentials to a stream on another host than the ONVIF device's (see credentialsForStream). */
  sendToStreamHost?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Probes a camera: `rtsp(s)://` with ffprobe; an ONVIF URL (`http://host:port/onvif/device_service` or
 * `onvif://host[:port]`) with ONVIF queries, then ffprobe on the main stream. Throws CamveilError (codes as
 * in queryOnvifDevice and {@link classifyFfprobeError}); nothing it returns or throws holds the password.
 */
export async function probeCamera(url: string, creds: OnvifCredentials | undefined, opts: ProbeOptions = {}): Promise<ProbeReport> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'rtsp' || scheme === 'rtsps') {
    const streams = await ffprobeStreams(withCredentials(url, creds?.user, creds?.password), { timeoutMs, password: creds?.password });
    const sub = foscamSubStreamFor(url);
    return { kind: 'rtsp', url: redactUrl(url), streams, ...(sub === undefined ? {} : { suggestedSubSource: redactUrl(sub) }) };
  }
  if (scheme === 'http' || scheme === 'https' || scheme === 'onvif') {
    const xaddr = onvifDeviceServiceUrl(url);
    const report = await queryOnvifDevice(xaddr, creds, { timeoutMs });
    const out: ProbeReport = {
      kind: 'onvif',
      url: redactUrl(xaddr),
      device: report.facts,
      profiles: report.profiles,
      main: report.main,
      ...(report.sub === undefined ? {} : { sub: report.sub }),
      ...(report.main.snapshotUri === undefined ? {} : { snapshotUri: report.main.snapshotUri }),
    };
    const trusted = credentialsForStream(xaddr, report.main.streamUri, opts.sendToStreamHost === true);
    if (!trusted && creds !== undefined) {
      out.credentialsWithheld = 'the device names its stream on another host: probed without credentials (credentials.sendToStreamHost: true sends them)';
    }
    try {
      const streamUrl = trusted ? withCredentials(report.main.streamUri, creds?.user, creds?.password) : report.main.streamUri;
      const streams = await ffprobeStreams(streamUrl, {
        timeoutMs,
        password: creds?.password,
      });
      out.mainStream = { ok: true, streams };
    } catch (error) {
      const e = asCamveilError(error);
      out.mainStream = { ok: false, error: { code: e.code, message: scrub(e.message, creds?.password) } };
    }
    return out;
  }
  throw new CamveilError('CAMVEIL_E_USAGE', `cannot probe ${redactUrl(url)}: give an rtsp:// URL, an ONVIF device service URL or onvif://host`);
}

const ffprobeOutput = z.looseObject({
  streams: z
    .array(
      z.looseObject({
        index: z.number().int(),
        codec_type: z.string().optional(),
        codec_name: z.string().optional(),
        width: z.number().int().optional(),
        height: z.number().int().optional(),
        avg_frame_rate: z.string().optional(),
        r_frame_rate: z.string().optional(),
      }),
    )
    .default([]),
});

/**
 * Runs ffprobe on a stream URL and returns its streams. An rtsp(s) URL may carry credentials: it reaches
 * ffprobe on its stdin as an ffconcat list (source-pipe.ts), never in its argument list. RTSP is forced
 * over TCP, as ingest does (cameras on Wi-Fi lose UDP packets). Requires at least one video stream (else
 * CAMVEIL_E_CAMERA_NOT_VIDEO).
 */
export async function ffprobeStreams(url: string, opts: { timeoutMs?: number; password?: string | undefined } = {}): Promise<StreamInfo[]> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const shown = redactUrl(url);
  const { ffprobe } = findFfmpeg();
  const network = /^rtsps?:/i.test(url);
  const piped = { ffmpegMajor: ffmpegMajorVersion(ffprobe), ioTimeoutSeconds: timeoutMs / 1000 };
  const args = [
    '-hide_banner',
    '-v', 'error',
    '-show_entries', 'stream=index,codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate',
    '-of', 'json',
    ...(network ? pipedSourceArgs(0, piped) : ['-i', url]),
  ];
  const input = network ? sourceListText(url, piped) : undefined;
  const { code, stdout, stderr, timedOut } = await run(ffprobe, args, timeoutMs + 2000, input);
  if (timedOut) {
    throw new CamveilError('CAMVEIL_E_CAMERA_UNREACHABLE', `${shown} did not answer within ${timeoutMs / 1000} s`, { where: shown });
  }
  if (code !== 0) throw classifyFfprobeError(stderr, shown, opts.password);
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new CamveilError('CAMVEIL_E_INTERNAL', `ffprobe printed something that is not JSON for ${shown}`, { where: shown });
  }
  const parsed = ffprobeOutput.safeParse(json);
  if (!parsed.success) throw new CamveilError('CAMVEIL_E_INTERNAL', `unexpected ffprobe output for ${shown}`, { where: shown });
  const streams = parsed.data.streams.map((s): StreamInfo => {
    const fps = frameRate(s.avg_frame_rate) ?? frameRate(s.r_frame_rate);
    return {
      index: s.index,
      type: s.codec_type ?? 'unknown',
      codec: s.codec_name ?? 'unknown',
      ...(s.width === undefined || s.width === 0 ? {} : { width: s.width }),
      ...(s.height === undefined || s.height === 0 ? {} : { height: s.height }),
      ...(fps === undefined ? {} : { fps }),
    };
  });
  if (!streams.some((s) => s.type === 'video')) {
    throw new CamveilError('CAMVEIL_E_CAMERA_NOT_VIDEO', `${shown} answers but carries no video stream`, { where: shown });
  }
  return streams;
}

/** `"15/1"` → 15, `"30000/1001"` → 29.97; `"0/0"` and the 90 kHz clock RTSP sometimes shows → undefined. */
function frameRate(text: string | undefined): number | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(text ?? '');
  if (m === null) return undefined;
  const fps = Number(m[1]) / Number(m[2]);
  return Number.isFinite(fps) && fps > 0 && fps <= 240 ? Math.round(fps * 100) / 100 : undefined;
}

/**
 * Classifies ffprobe's stderr (it has no exit codes beyond 1). `shown` is the redacted URL; the quoted
 * detail is scrubbed of credentials, since ffprobe repeats the URL it was given, userinfo included.
 */
export function classifyFfprobeError(stderr: string, shown: string, password?: string): CamveilError {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const detail = scrub((lines.at(-1) ?? 'ffprobe failed').replace(/^\S+:\/\/\S*:\s*/, ''), password);
  // The same rules as the ingest's (ffmpeg and ffprobe print the same libavformat messages).
  const rule = matchFfmpegFailure(stderr);
  if (rule !== undefined) return new CamveilError(rule.code, `${shown}: ${rule.message} (${detail})`, { where: shown });
  return new CamveilError('CAMVEIL_E_CAMERA_PROTOCOL', `${shown}: ffprobe could not read it (${detail})`, { where: shown });
}

function run(cmd: string, args: string[], killAfterMs: number, input?: string): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // EPIPE when ffprobe exits before reading its list: the exit itself is reported below.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, killAfterMs);
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // Not `error` itself: its message names the whole command line, and a spawn error has nothing to
      // add for the user beyond its code.
      reject(new CamveilError('CAMVEIL_E_FFMPEG_MISSING', `cannot run ${cmd}: ${error.code ?? 'error'}`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}
