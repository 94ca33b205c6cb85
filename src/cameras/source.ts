import type { CameraConfig } from '../config/schema.js';
import { CamveilError } from '../errors.js';
import type { Logger } from '../log.js';
import { redactUrl } from '../redact.js';
import type { DeviceFacts } from './device-facts.js';
import { onvifDeviceServiceUrl } from './foscam.js';
import { queryOnvifDevice } from './onvif.js';

export type SourceKind = 'rtsp' | 'onvif' | 'file';

/**
 * Where ffmpeg reads a camera from. `main`/`sub` carry the credentials and go to ffmpeg's argument list
 * only; everything else (logs, state, errors) uses `display`, which is redacted.
 */
export interface ResolvedSource {
  main: string;
  sub?: string;
  display: { main: string; sub?: string };
  /** What the camera said about itself (ONVIF sources only). Serial and MAC: see describeFactsForLog. */
  facts?: DeviceFacts;
  /** The main stream's resolution as the camera reports it (ONVIF profiles); the device-model rules need it. */
  mainSize?: { width: number; height: number };
  kind: SourceKind;
}

export interface ResolveSourceOptions {
  /** Deadline for the ONVIF exchange; default 10 000 ms. */
  timeoutMs?: number;
  /** Injected in tests; defaults to {@link queryOnvifDevice}. */
  queryOnvif?: typeof queryOnvifDevice;
  /** Told when credentials are withheld from a stream on another host (see {@link credentialsForStream}). */
  logger?: Logger;
}

/**
 * Whether an ONVIF device's stream URI may receive the camera's credentials: only when it names the
 * device's own host, or when the camera's config says `credentials.sendToStreamHost: true`. A device
 * (or whoever answers in its name) could otherwise name any host and collect the password, which ffmpeg
 * would send in answer to a Basic challenge. Host names are compared as written (case-insensitive): a
 * device configured by name that reports its stream by address needs the flag.
 */
export function credentialsForStream(xaddr: string, streamUri: string, sendToStreamHost: boolean): boolean {
  if (sendToStreamHost) return true;
  try {
    return new URL(xaddr).hostname.toLowerCase() === new URL(streamUri).hostname.toLowerCase();
  } catch {
    return false;
  }
}

/** The kind of a source URL as the config schema allows it: rtsp(s):, file:, or ONVIF (http(s):, onvif:). */
export function sourceKind(source: string): SourceKind {
  if (source.startsWith('file:')) return 'file';
  if (/^rtsps?:/i.test(source)) return 'rtsp';
  if (/^(https?|onvif):/i.test(source)) return 'onvif';
  throw new CamveilError('CAMVEIL_E_USAGE', `unsupported camera source ${redactUrl(source)}`);
}

/**
 * The path of a `file:` source. config/load.ts has already made relative paths absolute (`file:/abs/x.mp4`);
 * `file:///abs` and `file:rel` are accepted too. The text is taken as is (WHATWG URL parsing would turn
 * `file:rel/x.mp4` into `/rel/x.mp4`).
 */
export function filePathOf(source: string): string {
  return source.slice('file:'.length).replace(/^\/\/(?=\/)/, '');
}

/**
 * Puts credentials into an rtsp(s):// URL for ffmpeg. Both parts are percent-encoded in full
 * (encodeURIComponent): WHATWG URL's own setters leave `%`, `&`, `+`, `!` … as they are, and ffmpeg
 * percent-decodes the userinfo before authenticating. Without a user name the URL is returned unchanged.
 */
export function withCredentials(url: string, username: string | undefined, password: string | undefined): string {
  if (username === undefined || username === '') return url;
  const u = new URL(url);
  u.username = encodeURIComponent(username);
  u.password = password === undefined || password === '' ? '' : encodeURIComponent(password);
  return u.toString();
}

/**
 * Resolves a configured camera into the URLs ffmpeg opens: `file:` → the path (main only); `rtsp(s)://` →
 * the URL with credentials; ONVIF (`http://…/onvif/device_service`, `onvif://host[:port]`, Foscam port 88
 * by default) → asks the device for its profiles and takes the highest-resolution stream as main and the
 * lowest as sub. A configured `subSource` overrides the sub stream.
 */
export async function resolveCameraSource(camera: CameraConfig, password: string | undefined, opts: ResolveSourceOptions = {}): Promise<ResolvedSource> {
  const username = camera.credentials?.username;
  const kind = sourceKind(camera.source);
  let resolved: ResolvedSource;
  switch (kind) {
    case 'file': {
      const path = filePathOf(camera.source);
      resolved = { kind, main: path, display: { main: path } };
      break;
    }
    case 'rtsp':
      resolved = { kind, main: withCredentials(camera.source, username, password), display: { main: redactUrl(camera.source) } };
      break;
    case 'onvif': {
      const xaddr = onvifDeviceServiceUrl(camera.source);
      const query = opts.queryOnvif ?? queryOnvifDevice;
      const report = await query(xaddr, username === undefined ? undefined : { user: username, password: password ?? '' }, {
        ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      });
      const forStream = (uri: string, which: 'main' | 'sub'): string => {
        if (username === undefined || credentialsForStream(xaddr, uri, camera.credentials?.sendToStreamHost === true)) {
          return withCredentials(uri, username, password);
        }
        // Neither host is named: the log says what happened and what to do, not where (nor any secret).
        opts.logger?.warn(
          { camera: camera.id, stream: which },
          `camera ${camera.id}: the ONVIF device names a ${which} stream on another host; its credentials are not sent there ` +
            '(set credentials.sendToStreamHost: true if that host is really the camera)',
        );
        return uri;
      };
      resolved = {
        kind,
        main: forStream(report.main.streamUri, 'main'),
        display: { main: redactUrl(report.main.streamUri) },
        facts: report.facts,
        mainSize: { width: report.main.width, height: report.main.height },
      };
      if (report.sub !== undefined) {
        resolved.sub = forStream(report.sub.streamUri, 'sub');
        resolved.display.sub = redactUrl(report.sub.streamUri);
      }
      break;
    }
  }
  if (camera.subSource !== undefined) {
    const sub = resolveSubSource(camera.subSource, username, password, camera.id);
    resolved.sub = sub.url;
    resolved.display.sub = sub.display;
  }
  return resolved;
}

function resolveSubSource(source: string, username: string | undefined, password: string | undefined, cameraId: string): { url: string; display: string } {
  const kind = sourceKind(source);
  switch (kind) {
    case 'file': {
      const path = filePathOf(source);
      return { url: path, display: path };
    }
    case 'rtsp':
      return { url: withCredentials(source, username, password), display: redactUrl(source) };
    case 'onvif':
      throw new CamveilError(
        'CAMVEIL_E_CONFIG_INVALID',
        `cameras[${cameraId}].subSource: ${redactUrl(source)} is an ONVIF URL; give the sub stream as rtsp:// (or let source be the ONVIF URL)`,
        { where: `cameras[${cameraId}].subSource` },
      );
  }
}
