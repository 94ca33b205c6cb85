/**
 * Minimal typings for node-onvif 0.1.7, which ships none (it is CommonJS from 2018). Only the parts camveil
 * uses are declared, and every value that comes from a camera is typed `unknown`: camveil validates those
 * with zod (src/cameras/device-facts.ts, src/cameras/onvif.ts) instead of trusting the shapes below.
 */
declare module 'node-onvif' {
  /** What every SOAP call resolves to; `data` is xml2js output of the SOAP Body (namespace prefixes stripped). */
  export interface OnvifSoapResult {
    data: unknown;
  }

  export interface OnvifDeviceServiceClient {
    getNetworkInterfaces(): Promise<OnvifSoapResult>;
    getDeviceInformation(): Promise<OnvifSoapResult>;
  }

  export interface OnvifDeviceParams {
    /** Device service URL, `http://host:port/onvif/device_service`. Plain HTTP only: node-onvif never speaks HTTPS. */
    xaddr: string;
    user?: string;
    /** Printable ASCII without `<` or `>`: the service constructors throw otherwise. */
    pass?: string;
  }

  export class OnvifDevice {
    constructor(params: OnvifDeviceParams);
    /**
     * GetSystemDateAndTime (errors ignored), GetCapabilities, GetDeviceInformation, Media GetProfiles, then
     * GetStreamUri (UDP, HTTP, RTSP) and GetSnapshotUri for every profile (errors of those two ignored).
     * Resolves with the GetDeviceInformationResponse object.
     */
    init(): Promise<unknown>;
    /** A copy of the GetDeviceInformationResponse element, or null before init(). */
    getInformation(): unknown;
    /** node-onvif's own profile objects (see its device.js `_mediaGetProfiles`). */
    getProfileList(): unknown;
    getCurrentProfile(): unknown;
    services: { device: OnvifDeviceServiceClient; media: unknown };
  }

  /** One WS-Discovery ProbeMatch, as node-onvif reduces it. */
  export interface OnvifProbeMatch {
    urn: unknown;
    name: unknown;
    hardware: unknown;
    location: unknown;
    types: unknown;
    xaddrs: unknown;
    scopes: unknown;
  }

  /** The module exports one shared instance: discovery state (socket, timers, results) lives on it. */
  export interface Onvif {
    OnvifDevice: typeof OnvifDevice;
    /** Multicasts Probe messages, collects ProbeMatches for `_DISCOVERY_WAIT` ms, then resolves. */
    startProbe(): Promise<OnvifProbeMatch[]>;
    stopProbe(): Promise<void>;
    /** Private in node-onvif, but the only way to bound a probe: how long to listen, in ms (default 3000). */
    _DISCOVERY_WAIT: number;
    /** Private: how many rounds of three Probe messages are sent, 150 ms apart (default 3). */
    _DISCOVERY_RETRY_MAX: number;
    /** Private: pause between Probe messages in ms (default 150). */
    _DISCOVERY_INTERVAL: number;
  }

  const onvif: Onvif;
  export default onvif;
}
