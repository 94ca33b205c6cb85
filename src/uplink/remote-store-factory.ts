import type { Config, EndpointConfig } from '../config/schema.js';
import { rulesFor } from '../policy/region-rules.js';
import { chooseEndpoint, validateEndpoint } from './endpoint.js';
import { HttpReceiverStore } from './http-receiver-store.js';
import type { RemoteObjectStore } from './remote-object-store.js';
import { S3ObjectStore } from './s3-object-store.js';

/** Where this hub's objects go: its residency zone and the store configured for that zone. */
export interface CloudLink {
  zone: string;
  remote: RemoteObjectStore;
}

/**
 * The one place that turns the uplink config into a remote store: the hub's uplink (uploads and deletion
 * retries) and the household's data rights (deletion requests from the console) both call it, so they
 * cannot go to different places or read the token differently. The region rules pick the zone, the zone
 * picks the endpoint, the endpoint's `type` picks the transport. Undefined while uploads are off.
 *
 * @throws CamveilError `CAMVEIL_E_CONFIG_INVALID` when the zone has no endpoint,
 * `CAMVEIL_E_ENDPOINT_INSECURE` for an endpoint that is not https (plain http only to loopback) or carries
 * credentials in its URL.
 */
export function remoteStoreFor(config: Pick<Config, 'hub' | 'uplink'>, hubPseudonym: string): CloudLink | undefined {
  const { uplink } = config;
  if (!uplink.enabled) return undefined;
  const zone = rulesFor(config.hub.region).residencyZone;
  return { zone, remote: storeOf(chooseEndpoint(uplink.endpoints, zone), `uplink.endpoints.${zone}`, uplink, hubPseudonym) };
}

function storeOf(endpoint: EndpointConfig, where: string, uplink: Config['uplink'], hubPseudonym: string): RemoteObjectStore {
  switch (endpoint.type) {
    case 'http':
      return new HttpReceiverStore({
        endpoint: validateEndpoint(endpoint.url, where),
        hubPseudonym,
        // The schema requires a token file whenever uploads are enabled with an http endpoint.
        tokenFile: uplink.tokenFile ?? '',
        requestTimeoutMs: uplink.timeoutSeconds * 1000,
        ...(uplink.bandwidthKiBps === undefined ? {} : { bandwidthBytesPerSecond: uplink.bandwidthKiBps * 1024 }),
      });
    case 's3':
      return new S3ObjectStore({
        // The schema checked it (https, or http to loopback; no credentials); validated again as the http URL is.
        ...(endpoint.endpoint === undefined ? {} : { endpoint: validateEndpoint(endpoint.endpoint, `${where}.endpoint`) }),
        region: endpoint.region,
        bucket: endpoint.bucket,
        ...(endpoint.prefix === undefined ? {} : { prefix: endpoint.prefix }),
        forcePathStyle: endpoint.forcePathStyle,
        credentialsFile: endpoint.credentialsFile,
        hubPseudonym,
        requestTimeoutMs: uplink.timeoutSeconds * 1000,
        ...(uplink.bandwidthKiBps === undefined ? {} : { bandwidthBytesPerSecond: uplink.bandwidthKiBps * 1024 }),
      });
    default:
      return endpoint satisfies never;
  }
}
