import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A simulated ONVIF camera on 127.0.0.1 (ephemeral port) that answers what node-onvif's init() and
 * camveil's queries send, with replies shaped like a Foscam FI9900P's: GetSystemDateAndTime,
 * GetCapabilities and GetServices (ONVIF access class PRE_AUTH: answered without credentials), then
 * GetDeviceInformation, GetNetworkInterfaces, GetProfiles, GetStreamUri, GetSnapshotUri, which need a
 * valid WS-Security UsernameToken with PasswordDigest = Base64(SHA1(nonce + created + password)).
 */
export interface OnvifDeviceOptions {
  user?: string;
  password?: string;
  /** Stream URIs reported for the two profiles (1920x1080 main, 640x360 sub). */
  mainUri: string;
  subUri: string;
  /** How wrong credentials are refused: ONVIF's HTTP 400 + ter:NotAuthorized fault (default), or HTTP 401. */
  authFailure?: 'fault' | 'http-401';
  /**
   * - `malformed-xml`: every reply is truncated XML;
   * - `bad-device-info`: GetDeviceInformation repeats SerialNumber and puts a control character in Model;
   * - `hang`: accept connections and never answer.
   */
  misbehave?: 'malformed-xml' | 'bad-device-info' | 'hang';
  serialNumber?: string;
  mac?: string;
}

export interface OnvifDeviceSim {
  /** `http://127.0.0.1:port/onvif/device_service` */
  xaddr: string;
  port: number;
  /** SOAP actions received, in order, with whether they were authenticated. */
  requests: Array<{ action: string; authenticated: boolean }>;
  stop(): Promise<void>;
}

const PRE_AUTH = new Set(['GetSystemDateAndTime', 'GetCapabilities', 'GetServices']);
const NS =
  'xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" ' +
  'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" ' +
  'xmlns:ter="http://www.onvif.org/ver10/error"';

export async function startOnvifDevice(options: OnvifDeviceOptions): Promise<OnvifDeviceSim> {
  const o = {
    user: 'admin',
    password: 'secret',
    authFailure: 'fault' as const,
    serialNumber: 'FI9900P-SN-8C7F3B2A',
    mac: 'C4:D6:55:3A:2B:1C',
    ...options,
  };
  const requests: OnvifDeviceSim['requests'] = [];
  const seenNonces = new Set<string>();
  const sockets = new Set<Socket>();
  let port = 0;

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (o.misbehave === 'hang') return;
    const body = Buffer.concat(chunks).toString('utf8');
    const action = /<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?(\w+)/.exec(body)?.[1] ?? '';
    const authenticated = checkDigest(body, o.user, o.password, seenNonces);
    requests.push({ action, authenticated });
    if (o.misbehave === 'malformed-xml') {
      send(res, 200, `<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope ${NS}><SOAP-ENV:Body><tds:${action}Response><tt:Foo>`);
      return;
    }
    if (!PRE_AUTH.has(action) && !authenticated) {
      if (o.authFailure === 'http-401') {
        res.writeHead(401, { 'WWW-Authenticate': 'Digest realm="IPCamera", nonce="abc", qop="auth"', 'Content-Type': 'text/plain' });
        res.end('Unauthorized');
      } else {
        send(res, 400, fault('SOAP-ENV:Sender', 'ter:NotAuthorized', 'Sender not Authorized'));
      }
      return;
    }
    const reply = respond(action, body);
    if (reply === undefined) send(res, 400, fault('SOAP-ENV:Receiver', 'ter:ActionNotSupported', 'Optional Action Not Implemented'));
    else send(res, 200, envelope(reply));
  }

  function respond(action: string, body: string): string | undefined {
    const base = `http://127.0.0.1:${port}`;
    const token = /<(?:\w+:)?ProfileToken>([^<]*)</.exec(body)?.[1];
    switch (action) {
      case 'GetSystemDateAndTime': {
        const d = new Date();
        return (
          `<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>` +
          `<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>GMT0</tt:TZ></tt:TimeZone><tt:UTCDateTime>` +
          `<tt:Time><tt:Hour>${d.getUTCHours()}</tt:Hour><tt:Minute>${d.getUTCMinutes()}</tt:Minute><tt:Second>${d.getUTCSeconds()}</tt:Second></tt:Time>` +
          `<tt:Date><tt:Year>${d.getUTCFullYear()}</tt:Year><tt:Month>${d.getUTCMonth() + 1}</tt:Month><tt:Day>${d.getUTCDate()}</tt:Day></tt:Date>` +
          `</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>`
        );
      }
      case 'GetCapabilities':
        return (
          `<tds:GetCapabilitiesResponse><tds:Capabilities>` +
          `<tt:Device><tt:XAddr>${base}/onvif/device_service</tt:XAddr></tt:Device>` +
          `<tt:Media><tt:XAddr>${base}/onvif/Media</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>` +
          `<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>` +
          `</tds:Capabilities></tds:GetCapabilitiesResponse>`
        );
      case 'GetServices':
        return (
          `<tds:GetServicesResponse><tds:Service><tds:Namespace>http://www.onvif.org/ver10/device/wsdl</tds:Namespace>` +
          `<tds:XAddr>${base}/onvif/device_service</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tds:Version></tds:Service>` +
          `<tds:Service><tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace><tds:XAddr>${base}/onvif/Media</tds:XAddr>` +
          `<tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tds:Version></tds:Service></tds:GetServicesResponse>`
        );
      case 'GetDeviceInformation':
        if (o.misbehave === 'bad-device-info') {
          return (
            `<tds:GetDeviceInformationResponse><tds:Manufacturer>Foscam</tds:Manufacturer><tds:Model>FI9900P\u0007</tds:Model>` +
            `<tds:FirmwareVersion>2.84.2.33</tds:FirmwareVersion><tds:SerialNumber>${o.serialNumber}</tds:SerialNumber>` +
            `<tds:SerialNumber>${o.serialNumber}</tds:SerialNumber><tds:HardwareId>1.4.1.10</tds:HardwareId></tds:GetDeviceInformationResponse>`
          );
        }
        return (
          `<tds:GetDeviceInformationResponse><tds:Manufacturer>Foscam</tds:Manufacturer><tds:Model>FI9900P</tds:Model>` +
          `<tds:FirmwareVersion>2.84.2.33</tds:FirmwareVersion><tds:SerialNumber>${o.serialNumber}</tds:SerialNumber>` +
          `<tds:HardwareId>1.4.1.10</tds:HardwareId></tds:GetDeviceInformationResponse>`
        );
      case 'GetNetworkInterfaces':
        return (
          `<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0"><tt:Enabled>true</tt:Enabled>` +
          `<tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>${o.mac}</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info>` +
          `<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config><tt:Manual><tt:Address>127.0.0.1</tt:Address><tt:PrefixLength>8</tt:PrefixLength></tt:Manual>` +
          `<tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4></tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>`
        );
      case 'GetProfiles':
        return `<trt:GetProfilesResponse>${profile(0, 1920, 1080, 25, 4096)}${profile(1, 640, 360, 15, 512)}</trt:GetProfilesResponse>`;
      case 'GetStreamUri': {
        // Foscam answers the same RTSP URI whatever transport is asked for (node-onvif asks UDP, HTTP, RTSP).
        const uri = token === 'IPCProfilesToken1' ? o.subUri : token === 'IPCProfilesToken0' ? o.mainUri : undefined;
        if (uri === undefined) return undefined;
        return `<trt:GetStreamUriResponse>${mediaUri(uri)}</trt:GetStreamUriResponse>`;
      }
      case 'GetSnapshotUri': {
        // As on a real Foscam, the snapshot URI carries the credentials in its query.
        const uri = `${base}/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=${encodeURIComponent(o.user)}&pwd=${encodeURIComponent(o.password)}`;
        return `<trt:GetSnapshotUriResponse>${mediaUri(uri)}</trt:GetSnapshotUriResponse>`;
      }
      default:
        return undefined;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return {
    xaddr: `http://127.0.0.1:${port}/onvif/device_service`,
    port,
    requests,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Verifies a WS-Security UsernameToken PasswordDigest; a nonce is accepted once, `Created` within 5 minutes. */
function checkDigest(body: string, user: string, password: string, seen: Set<string>): boolean {
  const field = (name: string) => new RegExp(`<(?:[\\w-]+:)?${name}(?:\\s[^>]*)?>([^<]*)</`).exec(body)?.[1];
  const username = field('Username');
  const digest = field('Password');
  const nonce = field('Nonce');
  const created = field('Created');
  if (username === undefined || digest === undefined || nonce === undefined || created === undefined) return false;
  if (!/PasswordDigest/.test(/<(?:[\w-]+:)?Password\s([^>]*)>/.exec(body)?.[1] ?? '')) return false;
  if (xmlUnescape(username) !== user) return false;
  if (Math.abs(Date.parse(created) - Date.now()) > 5 * 60_000) return false;
  const expected = createHash('sha1')
    .update(Buffer.concat([Buffer.from(nonce, 'base64'), Buffer.from(created), Buffer.from(password)]))
    .digest();
  const given = Buffer.from(digest, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
  if (seen.has(nonce)) return false;
  seen.add(nonce);
  return true;
}

function profile(i: number, width: number, height: number, fps: number, bitrate: number): string {
  return (
    `<trt:Profiles token="IPCProfilesToken${i}" fixed="true"><tt:Name>IPCProfiles${i}</tt:Name>` +
    `<tt:VideoSourceConfiguration token="V_SRC_CFG_000"><tt:Name>V_SRC_CFG_000</tt:Name><tt:UseCount>2</tt:UseCount>` +
    `<tt:SourceToken>V_SRC_000</tt:SourceToken><tt:Bounds x="0" y="0" width="1920" height="1080"></tt:Bounds></tt:VideoSourceConfiguration>` +
    `<tt:VideoEncoderConfiguration token="V_ENC_00${i}"><tt:Name>V_ENC_00${i}</tt:Name><tt:UseCount>1</tt:UseCount>` +
    `<tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>${width}</tt:Width><tt:Height>${height}</tt:Height></tt:Resolution>` +
    `<tt:Quality>4</tt:Quality><tt:RateControl><tt:FrameRateLimit>${fps}</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval>` +
    `<tt:BitrateLimit>${bitrate}</tt:BitrateLimit></tt:RateControl><tt:H264><tt:GovLength>${fps * 2}</tt:GovLength>` +
    `<tt:H264Profile>Main</tt:H264Profile></tt:H264><tt:SessionTimeout>PT5S</tt:SessionTimeout></tt:VideoEncoderConfiguration></trt:Profiles>`
  );
}

function mediaUri(uri: string): string {
  return (
    `<trt:MediaUri><tt:Uri>${xmlEscape(uri)}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>` +
    `<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>`
  );
}

function fault(code: string, subcode: string, reason: string): string {
  return envelope(
    `<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>${code}</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>${subcode}</SOAP-ENV:Value>` +
      `</SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">${reason}</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>`,
  );
}

function envelope(body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope ${NS}><SOAP-ENV:Body>${body}</SOAP-ENV:Body></SOAP-ENV:Envelope>`;
}

function send(res: ServerResponse, status: number, xml: string): void {
  res.writeHead(status, { 'Content-Type': 'application/soap+xml; charset=utf-8', 'Content-Length': Buffer.byteLength(xml) });
  res.end(xml);
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function xmlUnescape(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}
