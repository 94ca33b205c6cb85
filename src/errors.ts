/**
 * The catalogue of stable error codes. The CLI, the logs and MQTT error replies use these codes;
 * docs/errors.md lists every one (a test keeps the two in step).
 */
export const ERROR_CODES = {
  CAMVEIL_E_USAGE: 'The command line is not valid',
  CAMVEIL_E_CONFIG_INVALID: 'The configuration file does not pass validation',
  CAMVEIL_E_CONFIG_UNREADABLE: 'The configuration file cannot be read or parsed',
  CAMVEIL_E_SECRET_UNREADABLE: 'A secret (password file or environment variable) is missing or unreadable',
  CAMVEIL_E_CAMERA_UNREACHABLE: 'The camera host does not answer',
  CAMVEIL_E_CAMERA_AUTH: 'The camera refused the credentials',
  CAMVEIL_E_CAMERA_NOT_VIDEO: 'The camera source answers but does not carry a usable video stream',
  CAMVEIL_E_CAMERA_PROTOCOL: 'The camera replied with something the protocol does not allow',
  CAMVEIL_E_STREAM_LOST: 'The camera stream ended unexpectedly',
  CAMVEIL_E_FFMPEG_MISSING: 'No ffmpeg binary was found on the system or in node_modules',
  CAMVEIL_E_DISCOVERY_FAILED: 'ONVIF WS-Discovery could not open or use its UDP socket',
  CAMVEIL_E_KEY_INVALID: 'An age recipient or identity is malformed or of an unsupported type',
  CAMVEIL_E_KEY_UNREADABLE: 'A key file is missing, unreadable, malformed or readable by group/other',
  CAMVEIL_E_DECRYPT_FAILED: 'An age file cannot be decrypted (no matching identity, bad header or corrupted payload)',
  CAMVEIL_E_MANIFEST_INVALID: 'A sealed object decrypted but its manifest is missing or does not pass validation',
  CAMVEIL_E_UPLOAD_REJECTED: 'The cloud refused an upload permanently (4xx); the object stays on the hub, marked failed',
  CAMVEIL_E_UPLOAD_FAILED: 'An upload failed for a reason that may pass (network, timeout, 5xx, 408, 429); it is retried with backoff',
  CAMVEIL_E_CLOUD_PROTOCOL: 'The cloud answered an upload with something the protocol does not allow',
  CAMVEIL_E_UPLOAD_ABORTED: 'An upload was aborted on request (stop or local-only mode); the object stays queued',
  CAMVEIL_E_ENDPOINT_INSECURE: 'An upload endpoint is not https (plain http is allowed only to loopback) or carries credentials in the URL',
  CAMVEIL_E_STORE_CORRUPT: 'The local database cannot be opened or read, or its schema is newer than this version',
  CAMVEIL_E_STORE_WRITE_FAILED: 'An object could not be written to the local store (disk error, body stream failed, duplicate id)',
  CAMVEIL_E_STORE_NOT_CIPHERTEXT: 'The local store refused bytes that do not start with an age v1 header',
  CAMVEIL_E_STORE_QUOTA: 'An object is larger than the whole local store quota',
  CAMVEIL_E_STORE_NOT_FOUND: 'The local store holds no object with that id (or its file is gone)',
  CAMVEIL_E_AUDIT_DETAILS_INVALID: 'An audit record was refused: its details hold personal data or do not match its type; nothing was appended',
  CAMVEIL_E_AUDIT_BROKEN: 'The audit log hash chain is broken (a record was edited, removed or reordered)',
  CAMVEIL_E_AUDIT_MISSING: 'There is no audit database in the data directory',
  CAMVEIL_E_AUDIT_ROLLBACK: "The audit log no longer reaches a head the hub signed earlier (its anchor, a kept head, or one the app saw): it was truncated or rolled back",
  CAMVEIL_E_AUDIT_ANCHOR_INVALID: "The audit anchor file (audit-head.json) cannot be read, is malformed, or is not signed by the hub's key",
  CAMVEIL_E_CONSENT_REQUIRED: 'The household has not granted the consent this data flow needs',
  CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED: "Enrolling a minor needs a guardian's attestation signed by a paired key of this hub",
  CAMVEIL_E_CONSENT_UNREADABLE: 'The consent ledger cannot be read (bad row, unknown consent, sequence gap); everything consent-governed is refused',
  CAMVEIL_E_CONSENT_INVALID: 'A consent record to append is malformed (actor, digest, consent name, time or version)',
  CAMVEIL_E_POLICY_VERSION: 'A privacy-policy version is malformed, unknown or listed twice with different content',
  CAMVEIL_E_MODEL_INVALID: 'A model file (face or object nets) is missing or differs from models/manifest.json (size or SHA-256), or the manifest is invalid',
  CAMVEIL_E_IMAGE_INVALID: 'An image is empty, not an image, in an unsupported format, or its pixel buffer does not match its size',
  CAMVEIL_E_NO_FACE: 'An image holds no usable face (none found, or too small, low-score or cut off at the edge)',
  CAMVEIL_E_SEVERAL_FACES: 'An enrolment photo holds more than one usable face: it cannot say whose face to enrol',
  CAMVEIL_E_PERSON_NOT_FOUND: 'No enrolled person has that id',
  CAMVEIL_E_SIGHTING_NOT_FOUND: 'No face sighting has that id (unknown, or deleted after the sighting retention period)',
  CAMVEIL_E_BACKEND_UNAVAILABLE: 'No TensorFlow.js backend for face recognition could be started (tfjs-node absent and wasm failed)',
  CAMVEIL_E_REQUEST_INVALID: 'An MQTT request is malformed, oversized, stale, retained or names another command than its topic',
  CAMVEIL_E_SIGNATURE_INVALID: 'An MQTT request signature does not verify against the paired key it names',
  CAMVEIL_E_REPLAY: 'An MQTT request reuses a sequence number its key has already used (replayed or out of order)',
  CAMVEIL_E_UNKNOWN_KEY: 'An MQTT request or command names an app key that is not paired or was revoked',
  CAMVEIL_E_HUB_UNVERIFIED: 'A message claiming to come from the hub is unsigned, not signed by the hub key pinned at pairing, stale, for another hub or request, or the app has not paired with that hub',
  CAMVEIL_E_PAIRING_FAILED: 'Pairing was refused: no active code, wrong proof, expired or already used code, or key already known',
  CAMVEIL_E_UNKNOWN_COMMAND: 'An MQTT request names a command the hub does not know',
  CAMVEIL_E_NOT_AUTHORISED: 'An MQTT command that widens data flow arrived without a signature by a paired app key',
  CAMVEIL_E_STATE_UNSAFE: 'The hub refused to publish its state because it looks like it holds a secret',
  CAMVEIL_E_REPLY_TOO_LARGE: 'An MQTT reply (a sealed export) would be larger than its cap; nothing was sent or recorded',
  CAMVEIL_E_REPLY_SEALED: "A hub reply's result is sealed and this app cannot open it: no identity given, or its identity is not among the household and paired phones' recipients",
  CAMVEIL_E_INTERNAL: 'An unexpected internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a stable machine-readable code; `where` names the input or component it concerns. */
export class CamveilError extends Error {
  readonly code: ErrorCode;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, options: { where?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CamveilError';
    this.code = code;
    this.where = options.where;
  }
}

/** A configuration problem; `issues` holds every problem found as `path: reason`. */
export class ConfigError extends CamveilError {
  readonly issues: readonly string[];

  constructor(file: string, issues: readonly string[]) {
    super('CAMVEIL_E_CONFIG_INVALID', `${file}: ${issues.length} problem(s)\n${issues.map((i) => `  ${i}`).join('\n')}`, {
      where: file,
    });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Exit codes of the CLI: 2 for bad usage or configuration, 1 for any other failure. */
export function exitCodeFor(error: unknown): 1 | 2 {
  if (error instanceof CamveilError) {
    return error.code === 'CAMVEIL_E_USAGE' ||
      error.code === 'CAMVEIL_E_CONFIG_INVALID' ||
      error.code === 'CAMVEIL_E_CONFIG_UNREADABLE' ||
      error.code === 'CAMVEIL_E_SECRET_UNREADABLE' ||
      error.code === 'CAMVEIL_E_KEY_INVALID'
      ? 2
      : 1;
  }
  return 1;
}

/** Turns anything thrown into a CamveilError, keeping codes that already exist. */
export function asCamveilError(error: unknown, where?: string): CamveilError {
  if (error instanceof CamveilError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new CamveilError('CAMVEIL_E_INTERNAL', message, { where, cause: error });
}
