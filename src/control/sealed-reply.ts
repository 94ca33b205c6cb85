import { z } from 'zod';
import { decryptToBuffer, encryptToBuffer } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import type { ControlResponse } from './command.js';
import { padJson } from './padding.js';

/**
 * Replies cross the broker sealed (MQTT API version 2). What a reply carries in clear is only what the
 * signed envelope needs to route and judge it: the command (it is the topic anyway), the request's
 * transaction, `status`, and for an error its stable `code`. The result (`data`) of an `ok` reply and the
 * `message` of an error reply are sealed together with age to the household recipients and the active paired
 * phones (the same set events and the sealed state go to), padded like events (padding.ts) so their length
 * does not tell one camera list or person list from another:
 *
 * ```json
 * { "status": "ok", "transaction": "…", "sealed": "<base64 age file of {\"data\": …} padded with spaces>" }
 * { "status": "error", "transaction": "…", "error": { "code": "CAMVEIL_E_…" }, "sealed": "<… {\"message\": \"…\"}>" }
 * ```
 *
 * Error messages are sealed too: they name what was wrong with the (sealed) args, a camera id, a setting.
 * With nobody to seal to (no household recipient, no paired phone) `sealed` is left out: the status and code
 * still say what happened, nothing else goes out.
 *
 * One exception, `pair` (CLEAR_REPLY_COMMANDS): its reply precedes pinning, the app cannot yet check anything
 * sealed for it, and it carries only public facts: the new key id (a hash of the public key the request
 * carried in clear), the hub's id, base topic, signing public key and age recipient, and the hub's proof of
 * the pairing code over them; or an error whose message names no person (the device label travels sealed
 * under the code's key, pairing.ts).
 */
export const CLEAR_REPLY_COMMANDS: ReadonlySet<string> = new Set(['pair']);

/** A reply as it is signed and published (hub-message.ts checks its shape on the app side). */
export interface WireResponse {
  status: 'ok' | 'error';
  transaction?: string;
  error?: { code: string; message?: string };
  /** Only for CLEAR_REPLY_COMMANDS. */
  data?: unknown;
  /** Base64 of the age file holding `{data}` or `{message}`, padded. */
  sealed?: string;
}

export const wireResponseSchema = z
  .strictObject({
    status: z.enum(['ok', 'error']),
    transaction: z.string().optional(),
    error: z.strictObject({ code: z.string().max(64), message: z.string().optional() }).optional(),
    data: z.unknown().optional(),
    sealed: z.string().min(1).optional(),
  })
  .refine((r) => (r.status === 'error') === (r.error !== undefined), 'an error reply has an error code, an ok reply none');

/** What the sealed part holds. */
const sealedPartSchema = z.strictObject({ data: z.unknown().optional(), message: z.string().optional() });

/**
 * The reply to publish for `response` to `command`: sealed to `recipients` (deduplicated by the caller, may be
 * empty), or in clear for CLEAR_REPLY_COMMANDS.
 */
export async function sealReply(command: string, response: ControlResponse, recipients: readonly string[]): Promise<WireResponse> {
  const transaction = response.transaction === undefined ? {} : { transaction: response.transaction };
  if (CLEAR_REPLY_COMMANDS.has(command)) {
    return response.status === 'ok'
      ? { status: 'ok', ...transaction, data: response.data }
      : { status: 'error', ...transaction, error: { code: response.error.code, message: response.error.message } };
  }
  const inner = response.status === 'ok' ? { data: response.data } : { message: response.error.message };
  const sealed = recipients.length === 0 ? {} : { sealed: (await encryptToBuffer(recipients, padJson(inner))).toString('base64') };
  return response.status === 'ok' ? { status: 'ok', ...transaction, ...sealed } : { status: 'error', ...transaction, error: { code: response.error.code }, ...sealed };
}

function notReadable(message: string): CamveilError {
  return new CamveilError('CAMVEIL_E_REPLY_SEALED', message, { where: 'reply' });
}

/**
 * Opens a signed reply (already checked against the pinned hub key) with the app's age identities and gives
 * it back as the command returned it. An error reply whose message cannot be opened is still returned as the
 * error it is (its code is clear), with a message saying why the text is missing.
 *
 * @throws CamveilError `CAMVEIL_E_REPLY_SEALED` when an `ok` reply's result cannot be opened: no identity
 * given, the hub had nobody to seal it to, or this app's identity is not among its recipients (a phone that
 * was not paired with its own recipient, or was revoked); `CAMVEIL_E_HUB_UNVERIFIED` when the hub put a
 * result in clear that must be sealed, or the sealed part is not a reply.
 */
export async function openReply(command: string, wire: WireResponse, identities: readonly string[] | undefined): Promise<ControlResponse> {
  const transaction = wire.transaction === undefined ? {} : { transaction: wire.transaction };
  if (CLEAR_REPLY_COMMANDS.has(command)) {
    return wire.status === 'ok'
      ? { data: wire.data ?? {}, status: 'ok', ...transaction }
      : { data: {}, status: 'error', error: { code: wire.error!.code, message: wire.error!.message ?? '' }, ...transaction };
  }
  if (wire.data !== undefined || wire.error?.message !== undefined) {
    throw new CamveilError('CAMVEIL_E_HUB_UNVERIFIED', `the reply to ${command.slice(0, 64)} carries its result in clear: refused`, { where: 'reply' });
  }
  let why: string | undefined;
  let part: z.infer<typeof sealedPartSchema> | undefined;
  if (wire.sealed === undefined) why = 'the hub had no household recipient or paired phone to seal it to';
  else if (identities === undefined || identities.length === 0) why = 'this app holds no age identity to open it (give --identity once; it is remembered)';
  else {
    let plain: Buffer | undefined;
    try {
      plain = await decryptToBuffer(identities, Buffer.from(wire.sealed, 'base64'));
    } catch {
      why = "this app's identity is not among its recipients (the household and the active paired phones)";
    }
    if (plain !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(plain.toString('utf8'));
      } catch {
        json = undefined;
      }
      const parsed = sealedPartSchema.safeParse(json);
      if (!parsed.success) throw new CamveilError('CAMVEIL_E_HUB_UNVERIFIED', `the sealed reply to ${command.slice(0, 64)} is not a reply`, { where: 'reply' });
      part = parsed.data;
    }
  }
  if (wire.status === 'error') {
    const message = part?.message ?? `(the error message is sealed: ${why ?? 'it holds none'})`;
    return { data: {}, status: 'error', error: { code: wire.error!.code, message }, ...transaction };
  }
  if (part === undefined) throw notReadable(`the hub's reply to ${command.slice(0, 64)} is sealed and ${why ?? 'cannot be opened'}`);
  return { data: part.data ?? {}, status: 'ok', ...transaction };
}
