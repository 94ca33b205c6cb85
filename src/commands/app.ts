import { readFile, writeFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { AppClient } from '../control/app-client.js';
import { enrolmentSubject, signGuardianAttestation } from '../control/guardian-attestation.js';
import { pinnedHubSchema, type PinnedHub } from '../control/hub-message.js';
import type { ControlResponse } from '../control/command.js';
import { MAX_PHOTO_BYTES, MAX_PHOTOS, PHOTO_MAX_SIDE } from '../control/request-limits.js';
import { decryptToBuffer, encryptToBuffer } from '../crypto/age-stream.js';
import { parseIdentityFile, recipientOf } from '../crypto/identities.js';
import { readPasswordFile } from '../config/secrets.js';
import { CamveilError } from '../errors.js';
import type { CommandIO } from './io.js';
import { untilStopRequested } from './service-lifecycle.js';

/** Where the app side talks to the hub, and where it keeps its signing key and sequence number. */
export interface AppOptions {
  broker: string;
  hub: string;
  state: string;
  baseTopic?: string;
  /**
   * A pinned-hub bundle (`devices add --out` on a device already paired): pinned into `state` before
   * anything is sent, for a device added with `devices/add` instead of the pairing code.
   */
  pinFrom?: string;
  /**
   * The phone's age identity file, for actions that take none themselves: it opens the hub's sealed replies.
   * Without it (and without the action's own), the one given last time is used (remembered in `state`).
   */
  identity?: string;
  /** How long to wait for the hub's reply (default: REPLY_TIMEOUT_SECONDS for the action). */
  timeoutSeconds?: number;
}

export type AppAction =
  | { kind: 'pair'; code: string; identity: string; label?: string }
  | { kind: 'status'; identity?: string }
  | { kind: 'consent'; action: 'grant' | 'withdraw' | 'accept-policy'; consent?: string; version?: string; unsigned?: boolean }
  | { kind: 'events'; identity: string; for?: number }
  | { kind: 'faces-enrol'; name: string; photos: string[]; minor?: boolean; keepPhotos?: boolean }
  | { kind: 'faces-list'; identity: string }
  | { kind: 'faces-add-photos'; personId: string; photos: string[]; keepPhotos?: boolean }
  | { kind: 'faces-correct'; sightingId: string; personId: string; verdict: 'is' | 'is-not'; unsigned?: boolean }
  | { kind: 'faces-sightings'; identity: string; limit?: number }
  | { kind: 'cameras-add'; id: string; source: string; subSource?: string; user?: string; passwordFile?: string }
  | { kind: 'cameras-remove'; id: string }
  | { kind: 'devices-key' }
  | { kind: 'devices-add'; publicKey: string; recipient: string; label?: string; out?: string };

/**
 * `camveil app …`: plays the phone app from a terminal, over MQTT only (API version 2). Its Ed25519 key,
 * sequence number and the hub keys pinned at pairing live in `--state` (0600). Requests that widen data flow
 * are signed, and every request's args are sealed to the hub recipient pinned at pairing; `--unsigned` sends a request without a signature, to see the hub refuse it (or accept it, for a
 * withdrawal). Every reply must be signed by the pinned hub key: anything else is printed as a
 * `CAMVEIL_E_HUB_UNVERIFIED` error and the command exits 1.
 */
/**
 * How long `camveil app` waits for a reply by default, in seconds. Enrolment decodes up to five photos and
 * runs the face models on each on the hub, which a small hub that is also recording may take well over ten
 * seconds to do; everything else is answered in milliseconds.
 */
export function replyTimeoutSeconds(action: AppAction): number {
  return action.kind === 'faces-enrol' || action.kind === 'faces-add-photos' ? 120 : 10;
}

export async function runApp(action: AppAction, opts: AppOptions, io: CommandIO): Promise<number> {
  const client = await mqtt.connectAsync(opts.broker, { connectTimeout: 10_000, reconnectPeriod: 0 });
  const timeoutMs = (opts.timeoutSeconds ?? replyTimeoutSeconds(action)) * 1000;
  const app = new AppClient({ client, baseTopic: opts.baseTopic ?? 'camveil', hubId: opts.hub, stateFile: opts.state, timeoutMs });
  await app.start();
  /**
   * Every request's args are sealed to the hub recipient pinned at pairing (AppClient.prepare); a camera
   * password is sealed to it once more on its own, because the hub stores it as sealed.
   */
  const hubRecipient = (): Promise<string> => Promise.resolve(app.requirePinned().recipient);
  const photosOf = async (files: readonly string[]): Promise<string[]> => {
    if (files.length > MAX_PHOTOS) throw new CamveilError('CAMVEIL_E_USAGE', `at most ${MAX_PHOTOS} photos per request`);
    const photos: string[] = [];
    // One at a time: a phone photo decodes to tens of megabytes of pixels.
    for (const file of files) photos.push((await photoForHub(file)).toString('base64'));
    return photos;
  };
  try {
    if (opts.pinFrom !== undefined) app.pin(await readPinnedBundle(opts.pinFrom));
    // Every reply's result is sealed to the household and the paired phones: opened with the identity given
    // here, or the one given last time (its path is remembered in the state file).
    const identityFile = ('identity' in action ? action.identity : undefined) ?? opts.identity ?? app.identityFile;
    const identities = identityFile === undefined ? undefined : await parseIdentityFile(await readFile(identityFile, 'utf8'), identityFile);
    if (identities !== undefined && identityFile !== undefined) {
      app.useIdentity(identities);
      if (action.kind !== 'events') app.rememberIdentityFile(identityFile);
    }
    let response: ControlResponse;
    switch (action.kind) {
      case 'pair': {
        const recipient = await recipientOf(identities![0]!, action.identity);
        response = await app.pair(action.code, recipient, action.label);
        break;
      }
      case 'status': {
        if (identities === undefined) {
          // Nothing to open a sealed reply with: the clear health of the signed retained state is what there is.
          const { health } = await app.readState();
          response = { data: { health }, status: 'ok' };
          break;
        }
        response = await app.request('status', {}, { sign: false });
        // The hub's signed audit head: lower than one seen before is a rollback (CAMVEIL_E_AUDIT_ROLLBACK).
        if (response.status === 'ok') app.observeState((response.data as { state?: unknown }).state);
        break;
      }
      case 'consent': {
        const args = action.action === 'accept-policy' ? { action: action.action, version: action.version } : { action: action.action, consent: action.consent };
        response = await app.request('consent/set', args, { sign: action.unsigned !== true });
        break;
      }
      case 'faces-enrol': {
        // The name and photos travel in the args, which the app client seals to the pinned hub recipient.
        const payload: Record<string, unknown> = { name: action.name, minor: action.minor === true, photos: await photosOf(action.photos), keepPhotos: action.keepPhotos === true };
        // A minor: this app's key signs the guardian's attestation for this hub, this name and these photos.
        if (action.minor === true) payload.guardianAttestation = signGuardianAttestation(app.key, { hubId: opts.hub, subject: enrolmentSubject(action.name, payload.photos as string[]) });
        response = await app.request('faces/enrol', payload, { sign: true });
        break;
      }
      case 'faces-add-photos': {
        const args = { personId: action.personId, photos: await photosOf(action.photos), keepPhotos: action.keepPhotos === true };
        response = await app.request('faces/add-photos', args, { sign: true });
        break;
      }
      case 'faces-correct':
        response = await app.request('faces/correct', { sightingId: action.sightingId, personId: action.personId, verdict: action.verdict }, { sign: action.unsigned !== true });
        break;
      case 'faces-sightings': {
        response = await app.request('faces/sightings', action.limit === undefined ? {} : { limit: action.limit }, { sign: true });
        if (response.status === 'ok') {
          // Sealed once more inside, to the phone that asked (face-commands.ts).
          const data = response.data as { count: number; sealedSightings: string };
          const sightings = JSON.parse((await decryptToBuffer(identities!, Buffer.from(data.sealedSightings, 'base64'))).toString('utf8')) as unknown;
          response = { ...response, data: { count: data.count, sightings } };
        }
        break;
      }
      case 'cameras-add': {
        let sealedPassword: string | undefined;
        if (action.passwordFile !== undefined) {
          const password = readPasswordFile(action.passwordFile, '--password-file');
          sealedPassword = (await encryptToBuffer([await hubRecipient()], Buffer.from(password))).toString('base64');
        }
        const camera = {
          id: action.id,
          source: action.source,
          ...(action.subSource === undefined ? {} : { subSource: action.subSource }),
          ...(action.user === undefined ? {} : { credentials: { username: action.user } }),
        };
        response = await app.request('cameras/add', { camera, ...(sealedPassword === undefined ? {} : { sealedPassword }) }, { sign: true });
        break;
      }
      case 'cameras-remove':
        response = await app.request('cameras/remove', { cameraId: action.id }, { sign: true });
        break;
      case 'devices-key':
        // What a paired device needs to add this one (`devices add`): public, nothing secret.
        io.stdout(JSON.stringify({ keyId: app.key.keyId, publicKey: app.key.publicKey }, null, 2));
        return 0;
      case 'devices-add': {
        // The new device gets the hub keys this app pinned at pairing, never keys a reply named.
        const pinned = app.requirePinned();
        response = await app.request('devices/add', { publicKey: action.publicKey, recipient: action.recipient, ...(action.label === undefined ? {} : { label: action.label }) }, { sign: true });
        if (response.status === 'ok') {
          const bundle: PinnedHub = { hubId: pinned.hubId, baseTopic: pinned.baseTopic, signingKey: pinned.signingKey, recipient: pinned.recipient };
          if (action.out !== undefined) await writeFile(action.out, `${JSON.stringify(bundle, null, 2)}\n`, { mode: 0o600 });
          response = { ...response, data: { ...(response.data as object), pinned: bundle } };
        }
        break;
      }
      case 'faces-list': {
        response = await app.request('faces/list', {}, { sign: true });
        if (response.status === 'ok') {
          const data = response.data as { people: object[]; sealedNames: string };
          const names = JSON.parse((await decryptToBuffer(identities!, Buffer.from(data.sealedNames, 'base64'))).toString('utf8')) as unknown;
          response = { ...response, data: { people: data.people, names } };
        }
        break;
      }
      case 'events': {
        const stop = await app.followEvents(identities!, (event) => io.stdout(JSON.stringify(event)), (error) =>
          io.stderr(`camveil: an event could not be opened: ${error instanceof Error ? error.message : String(error)}`),
        );
        await untilStopRequested(action.for);
        await stop();
        return 0;
      }
      default:
        action satisfies never;
        throw new CamveilError('CAMVEIL_E_USAGE', 'unknown app action');
    }
    io.stdout(JSON.stringify(response, null, 2));
    return response.status === 'ok' ? 0 : 1;
  } catch (error) {
    // What the broker forged or tampered with is reported as what it is, never as the hub's answer.
    // A reply this app cannot open is reported the same way (its code says why), never as garbage.
    if (!(error instanceof CamveilError) || !REPORTED_CODES.has(error.code)) throw error;
    io.stdout(JSON.stringify({ data: {}, status: 'error', error: { code: error.code, message: error.message } }, null, 2));
    return 1;
  } finally {
    await app.stop();
    await client.endAsync();
  }
}

/**
 * A photo as `camveil app faces …` sends it: turned upright by its EXIF orientation, scaled to PHOTO_MAX_SIDE on
 * its longer side (never enlarged: that is what the face models can use, request-limits.ts) and re-encoded as
 * JPEG, which also drops its metadata (GPS position, camera serial). The quality steps down until it fits
 * MAX_PHOTO_BYTES.
 *
 * @throws CamveilError `CAMVEIL_E_IMAGE_INVALID` naming the file when it is not an image sharp can decode, or
 * does not fit even at the lowest quality.
 */
export async function photoForHub(file: string): Promise<Buffer> {
  const bytes = await readFile(file);
  for (const quality of [90, 80, 70, 60]) {
    let out: Buffer;
    try {
      out = await sharp(bytes, { failOn: 'error' })
        .rotate()
        .resize({ width: PHOTO_MAX_SIDE, height: PHOTO_MAX_SIDE, fit: 'inside', withoutEnlargement: true })
        .jpeg({ quality })
        .toBuffer();
    } catch (error) {
      throw new CamveilError('CAMVEIL_E_IMAGE_INVALID', `${file}: not an image this app can read`, { where: file, cause: error });
    }
    if (out.length <= MAX_PHOTO_BYTES) return out;
  }
  throw new CamveilError('CAMVEIL_E_IMAGE_INVALID', `${file}: larger than ${MAX_PHOTO_BYTES} bytes even scaled to ${PHOTO_MAX_SIDE} px at JPEG quality 60`, { where: file });
}

/** Refusals printed as an error reply (exit 1) rather than thrown. */
const REPORTED_CODES: ReadonlySet<string> = new Set(['CAMVEIL_E_HUB_UNVERIFIED', 'CAMVEIL_E_AUDIT_ROLLBACK', 'CAMVEIL_E_REPLY_SEALED']);

/**
 * Reads a pinned-hub bundle `{hubId, baseTopic, signingKey, recipient}` written by `devices add --out`.
 *
 * @throws CamveilError `CAMVEIL_E_USAGE` naming the file when it is not one.
 */
async function readPinnedBundle(file: string): Promise<PinnedHub> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_USAGE', `${file}: not a pinned-hub bundle (the JSON camveil app devices add --out writes)`, { where: file, cause: error });
  }
  const parsed = pinnedHubSchema.safeParse(json);
  if (!parsed.success) throw new CamveilError('CAMVEIL_E_USAGE', `${file}: not a pinned-hub bundle: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { where: file });
  return parsed.data;
}
