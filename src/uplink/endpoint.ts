import { CamveilError } from '../errors.js';
import { redactUrl } from '../redact.js';

/** True for hosts that never leave the machine: 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopbackHost(hostname: string): boolean {
  // URL keeps IPv6 hosts in brackets and normalises IPv4 shorthands (`127.1`) to dotted quads.
  const host = hostname.toLowerCase();
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Parses and checks an upload endpoint: `https:` required, `http:` only to loopback (tests, a receiver
 * on the hub itself); no `user:password@` (the bearer token travels in a header, never in the URL).
 *
 * @throws CamveilError `CAMVEIL_E_ENDPOINT_INSECURE` when the scheme or credentials are not allowed,
 * `CAMVEIL_E_CONFIG_INVALID` when it is not a URL.
 */
export function validateEndpoint(endpoint: string, where = 'uplink endpoint'): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `${where}: not a URL: ${redactUrl(endpoint)}`, { where, cause: error });
  }
  if (url.username !== '' || url.password !== '') {
    throw new CamveilError('CAMVEIL_E_ENDPOINT_INSECURE', `${where}: credentials in the URL are not allowed (${redactUrl(endpoint)})`, {
      where,
    });
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  const why = url.protocol === 'http:' ? 'plain http is allowed only to loopback' : `scheme ${url.protocol} is not supported`;
  throw new CamveilError('CAMVEIL_E_ENDPOINT_INSECURE', `${where}: ${redactUrl(endpoint)} must be https (${why})`, { where });
}

/**
 * The endpoint for `zone` from a zone → endpoint table (the residency rules pick the zone); the caller
 * validates what it holds (see remote-store-factory.ts).
 *
 * @throws CamveilError `CAMVEIL_E_CONFIG_INVALID` naming the zone when the table has no entry for it.
 */
export function chooseEndpoint<T>(zones: Partial<Record<string, T>>, zone: string): T {
  const endpoint = Object.hasOwn(zones, zone) ? zones[zone] : undefined;
  if (endpoint === undefined) {
    const known = Object.keys(zones);
    throw new CamveilError(
      'CAMVEIL_E_CONFIG_INVALID',
      `no upload endpoint is configured for residency zone "${zone}" (configured: ${known.length > 0 ? known.join(', ') : 'none'})`,
      { where: `uplink.endpoints.${zone}` },
    );
  }
  return endpoint;
}

/** `<endpoint>/v1/objects/<hub>`, keeping any path prefix the endpoint has: the hub's objects. */
export function hubUrl(endpoint: URL, hubPseudonym: string): URL {
  const url = new URL(endpoint);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/objects/${encodeURIComponent(hubPseudonym)}`;
  url.search = '';
  url.hash = '';
  return url;
}

/** `<endpoint>/v1/objects/<hub>/<objectId>`, keeping any path prefix the endpoint has. */
export function objectUrl(endpoint: URL, hubPseudonym: string, objectId: string): URL {
  const url = hubUrl(endpoint, hubPseudonym);
  url.pathname = `${url.pathname}/${encodeURIComponent(objectId)}`;
  return url;
}
