import { CamveilError } from '../errors.js';
import { redactUrl } from '../redact.js';

/**
 * Foscam conventions (HD models: FI9800P, FI9900P, C1/C2, R2/R4 …; see Foscam's "IP Camera CGI User Guide"
 * and their RTSP/ONVIF support notes):
 * - The web UI, the CGI API, ONVIF and RTSP all share one "HTTP port", 88 by default. ONVIF's device
 *   service is at `http://host:88/onvif/device_service` (plain HTTP: the HTTPS port 443 serves the web UI only).
 * - RTSP works without ONVIF: `rtsp://host:88/videoMain` (main stream, up to the sensor resolution) and
 *   `rtsp://host:88/videoSub` (sub stream, typically 640x360), `/audio` for audio alone.
 * - The snapshot URI an ONVIF Foscam reports is a CGI call with the credentials in the query
 *   (`/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=…&pwd=…`): always pass it through redactUrl.
 * - Older MJPEG models (FI8910W …) speak neither RTSP nor ONVIF and are not supported.
 */
export const FOSCAM_HTTP_PORT = 88;
export const FOSCAM_MAIN_PATH = '/videoMain';
export const FOSCAM_SUB_PATH = '/videoSub';
export const ONVIF_DEVICE_SERVICE_PATH = '/onvif/device_service';

/**
 * The ONVIF device service URL (xaddr) for a camera source: `onvif://host[:port]` becomes
 * `http://host[:88]/onvif/device_service`; an `http(s)://` URL is returned unchanged. Anything else is
 * CAMVEIL_E_USAGE.
 */
export function onvifDeviceServiceUrl(source: string): string {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new CamveilError('CAMVEIL_E_USAGE', `not a URL: ${redactUrl(source)}`);
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') return url.toString();
  if (url.protocol !== 'onvif:') {
    throw new CamveilError('CAMVEIL_E_USAGE', `${redactUrl(source)} is not an ONVIF URL (onvif://host or http://host:port/onvif/device_service)`);
  }
  if (url.hostname === '') throw new CamveilError('CAMVEIL_E_USAGE', `${redactUrl(source)} names no host`);
  const port = url.port === '' ? FOSCAM_HTTP_PORT : Number(url.port);
  // A path after the host (onvif://host/some/path) is taken as the service path; the default is ONVIF's.
  const path = url.pathname === '' || url.pathname === '/' ? ONVIF_DEVICE_SERVICE_PATH : url.pathname;
  return `http://${url.hostname}:${port}${path}`;
}

/** The two RTSP streams of a Foscam HD camera without ONVIF, without credentials. */
export function foscamRtspUrls(host: string, port: number = FOSCAM_HTTP_PORT): { main: string; sub: string } {
  const authority = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
  return { main: `rtsp://${authority}${FOSCAM_MAIN_PATH}`, sub: `rtsp://${authority}${FOSCAM_SUB_PATH}` };
}

/**
 * Suggests the sub stream for a Foscam main stream: `rtsp://host:88/videoMain` → `rtsp://host:88/videoSub`
 * (credentials and query kept as given). Returns undefined for any URL that is not a Foscam main stream.
 */
export function foscamSubStreamFor(mainUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(mainUrl);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'rtsp:' && url.protocol !== 'rtsps:') return undefined;
  if (url.pathname.toLowerCase() !== FOSCAM_MAIN_PATH.toLowerCase()) return undefined;
  url.pathname = FOSCAM_SUB_PATH;
  return url.toString();
}
