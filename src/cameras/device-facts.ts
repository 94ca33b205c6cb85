import { z } from 'zod';
import { CamveilError } from '../errors.js';
import { redactUrl } from '../redact.js';

/**
 * What a camera says about itself over ONVIF (GetDeviceInformation, GetNetworkInterfaces).
 * `serialNumber`, `hardwareId` and `mac` identify one physical device: they are shown to the user who
 * asked (`camveil probe`) but never logged; logs get {@link describeFactsForLog} instead.
 */
export interface DeviceFacts {
  manufacturer?: string;
  model?: string;
  firmware?: string;
  serialNumber?: string;
  hardwareId?: string;
  mac?: string;
}

/**
 * xml2js (inside node-onvif) turns `<X>text</X>` into `"text"`, `<X/>` into `""`, and an element with
 * attributes into `{ _: "text", $: {...} }`. A repeated element becomes an array: that is not allowed here.
 * Printable text only, so a hostile device cannot put terminal escapes in front of the user.
 */
const onvifText = z
  .union([z.string(), z.looseObject({ _: z.string() }).transform((o) => o._)], { error: 'not a single text element' })
  .pipe(
    z
      .string()
      .max(256, 'longer than 256 characters')
      .regex(/^[^\p{Cc}]*$/u, 'contains control characters'),
  )
  .transform((s) => (s.trim() === '' ? undefined : s.trim()));

/**
 * GetDeviceInformationResponse as node-onvif returns it. ONVIF's schema defines exactly these five
 * elements (no extension point), so anything else is refused; `$` holds namespace declarations.
 */
export const deviceInformationSchema = z.strictObject({
  $: z.record(z.string(), z.unknown()).optional(),
  Manufacturer: onvifText.optional(),
  Model: onvifText.optional(),
  FirmwareVersion: onvifText.optional(),
  SerialNumber: onvifText.optional(),
  HardwareId: onvifText.optional(),
});

const MAC = /^[0-9a-f]{2}([:-]?[0-9a-f]{2}){5}$/i;

/** Formats every zod issue as `path: reason`, all at once. */
export function zodIssues(error: z.ZodError, prefix: string): string[] {
  return error.issues.map((issue) => `${[prefix, ...issue.path.map(String)].join('.')}: ${issue.message}`);
}

/** The error for a camera reply that breaks the protocol: names the device (redacted) and every bad field. */
export function protocolError(xaddr: string, issues: readonly string[], cause?: unknown): CamveilError {
  return new CamveilError('CAMVEIL_E_CAMERA_PROTOCOL', `${redactUrl(xaddr)} sent a malformed ONVIF reply: ${issues.join('; ')}`, {
    where: redactUrl(xaddr),
    cause,
  });
}

/**
 * Validates node-onvif's GetDeviceInformation result (external input) into {@link DeviceFacts}.
 * Throws CAMVEIL_E_CAMERA_PROTOCOL naming each malformed field and the device by redacted URL.
 */
export function parseDeviceInformation(raw: unknown, xaddr: string): DeviceFacts {
  const parsed = deviceInformationSchema.safeParse(raw ?? {});
  if (!parsed.success) throw protocolError(xaddr, zodIssues(parsed.error, 'GetDeviceInformation'), parsed.error);
  const info = parsed.data;
  return stripUndefined({
    manufacturer: info.Manufacturer,
    model: info.Model,
    firmware: info.FirmwareVersion,
    serialNumber: info.SerialNumber,
    hardwareId: info.HardwareId,
  });
}

/** Validates a MAC address from GetNetworkInterfaces; normalised to lower-case `aa:bb:cc:dd:ee:ff`. */
export function parseMac(raw: unknown, xaddr: string): string | undefined {
  const parsed = onvifText.safeParse(raw);
  if (!parsed.success) throw protocolError(xaddr, zodIssues(parsed.error, 'GetNetworkInterfaces.Info.HwAddress'), parsed.error);
  if (parsed.data === undefined) return undefined;
  if (!MAC.test(parsed.data)) throw protocolError(xaddr, ['GetNetworkInterfaces.Info.HwAddress: not a MAC address']);
  const hex = parsed.data.replace(/[:-]/g, '').toLowerCase();
  return hex.match(/../g)!.join(':');
}

/** What may be logged about a device: make, model, firmware and a pseudonym instead of serial or MAC. */
export interface LoggableFacts {
  manufacturer?: string;
  model?: string;
  firmware?: string;
  /** Pseudonym of the serial number (preferred) or the MAC; absent when the device reported neither. */
  device?: string;
}

/**
 * Reduces facts to what logs may hold. `pseudonymise(kind, value)` is the gateway's HMAC under the hub
 * secret, so the same camera gets the same pseudonym across restarts and no other hub can link it.
 * Serial numbers, hardware ids and MACs never appear raw.
 */
export function describeFactsForLog(facts: DeviceFacts, pseudonymise: (kind: string, value: string) => string): LoggableFacts {
  const device =
    facts.serialNumber !== undefined
      ? pseudonymise('serial', facts.serialNumber)
      : facts.mac !== undefined
        ? pseudonymise('mac', facts.mac)
        : undefined;
  return stripUndefined({ manufacturer: facts.manufacturer, model: facts.model, firmware: facts.firmware, device });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
