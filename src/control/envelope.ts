import { createHash, verify } from 'node:crypto';
import { z } from 'zod';
import { decryptStream } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import { decodeBase64, ed25519KeyObject, rawEd25519, type KeyRegistry } from './key-registry.js';
import { MAX_ARGS_BYTES, MAX_REQUEST_BYTES } from './request-limits.js';

/**
 * The request envelope, as published on `request/<command>`:
 *
 * ```json
 * { "payload": "<base64 of the payload bytes>", "keyId": "<paired key id>", "sig": "<base64 Ed25519 signature>" }
 * ```
 *
 * The signature covers exactly the payload bytes (not a re-serialisation), so the hub never has to agree
 * with the app on JSON canonicalisation. `keyId` and `sig` come together or not at all: an unsigned request
 * is parsed and returned with `signer: undefined`, and the dispatcher decides whether its command may run.
 * The payload is JSON `{v, hub, base, command, transaction, seq, ts, args?, sealedArgs?}` (MQTT API version 2):
 * `hub` and `base` name the hub id and base topic the request is meant for, so a request signed for one hub is
 * refused by every other hub the same key is paired with; `seq` is per key and strictly increasing (checked for
 * signed requests only: unsigned ones have no key to count for), `ts` is Unix milliseconds.
 *
 * The broker reads every byte it carries, and arguments name cameras, stream URLs, people and settings: so
 * `sealedArgs` is the base64 of an age file, sealed to the hub's recipient the app pinned at pairing, holding
 * the JSON args. It is part of the signed payload bytes, so the signature binds the ciphertext. Clear `args`
 * may only be absent or `{}` — except for `pair` (CLEAR_ARGS_COMMANDS), which is sent before the app knows the
 * hub's recipient; its person-chosen label travels sealed under a key derived from the pairing code instead
 * (pairing.ts). Unsigned requests follow the same rule: a withdrawal seals its args too.
 */
// The caps come from the largest args (five enrolment photos): request-limits.ts.
export { MAX_ARGS_BYTES, MAX_REQUEST_BYTES } from './request-limits.js';
/** The commands whose args may travel in clear (see the module comment). */
export const CLEAR_ARGS_COMMANDS: ReadonlySet<string> = new Set(['pair']);
/** How far a request's `ts` may be from the hub's clock, either way. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

const envelopeSchema = z.strictObject({
  payload: z.string().min(1),
  keyId: z.string().min(1).max(128).optional(),
  sig: z.string().min(1).max(256).optional(),
});

const payloadSchema = z.strictObject({
  v: z.literal(2),
  hub: z.string().min(1).max(64),
  base: z.string().min(1).max(256),
  command: z.string().min(1).max(64),
  transaction: z.string().min(1).max(128),
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  ts: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  args: z.unknown().optional(),
  sealedArgs: z.string().min(1).max(MAX_REQUEST_BYTES).optional(),
});

export interface VerifiedRequest {
  command: string;
  transaction: string;
  /** The clear args: absent or `{}`, except for CLEAR_ARGS_COMMANDS. */
  args: unknown;
  /** The age ciphertext of the args, sealed to the hub (openSealedArgs); undefined when the args are clear. */
  sealedArgs: Buffer | undefined;
  /** Key id of the paired, unrevoked key that signed the payload; undefined for an unsigned request. */
  signer: string | undefined;
  seq: number;
  /** SHA-256 hex of the payload bytes: what audit and consent records cite. */
  digest: string;
}

/** The hub a request must name. */
export interface RequestTarget {
  hubId: string;
  baseTopic: string;
}

export interface VerifyOptions {
  /**
   * Record the signer's `seq` in the registry (default true). The dispatcher passes false and records it
   * itself once the command is known to be allowed, so a refused request changes nothing.
   */
  commitSeq?: boolean;
}

function invalid(message: string, where = 'request'): CamveilError {
  return new CamveilError('CAMVEIL_E_REQUEST_INVALID', message, { where });
}

/** zod issues as `path: reason`, without values (they may be personal data), capped in length. */
export function issueText(error: z.ZodError): string {
  const text = error.issues.map((i) => `${i.path.length === 0 ? '(root)' : i.path.join('.')}: ${i.message}`).join('; ');
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid(`${what} is not JSON`);
  }
}

/**
 * Parses and checks one request: size, envelope shape, base64, payload shape, signature by a paired and
 * unrevoked key, timestamp within ±5 minutes of `now`, the hub it names is `target`, and (for signed
 * requests) `seq` above the key's last.
 *
 * @throws CamveilError `CAMVEIL_E_REQUEST_INVALID` (malformed, oversized, bad base64, stale `ts`, another hub),
 * `CAMVEIL_E_UNKNOWN_KEY` (key never paired or revoked), `CAMVEIL_E_SIGNATURE_INVALID`, `CAMVEIL_E_REPLAY`.
 */
export function verifyRequest(raw: Buffer, keys: KeyRegistry, now: number, target: RequestTarget, options: VerifyOptions = {}): VerifiedRequest {
  if (raw.length > MAX_REQUEST_BYTES) throw invalid(`request is larger than ${MAX_REQUEST_BYTES} bytes`);
  const envelope = envelopeSchema.safeParse(parseJson(raw, 'request'));
  if (!envelope.success) throw invalid(`envelope: ${issueText(envelope.error)}`);
  const { keyId, sig } = envelope.data;
  const payloadBytes = decodeBase64(envelope.data.payload);
  if (payloadBytes === undefined) throw invalid('payload: not canonical base64', 'payload');
  const parsed = payloadSchema.safeParse(parseJson(payloadBytes, 'payload'));
  if (!parsed.success) throw invalid(`payload: ${issueText(parsed.error)}`, 'payload');
  const payload = parsed.data;
  if (Math.abs(payload.ts - now) > MAX_CLOCK_SKEW_MS) {
    throw invalid('payload: ts is more than 5 minutes away from the hub clock', 'ts');
  }
  if (payload.hub !== target.hubId || payload.base !== target.baseTopic) throw invalid('payload: the request names another hub', 'hub');
  const sealedArgs = payload.sealedArgs === undefined ? undefined : decodeBase64(payload.sealedArgs);
  if (payload.sealedArgs !== undefined) {
    if (sealedArgs === undefined) throw invalid('payload: sealedArgs is not canonical base64', 'sealedArgs');
    if (payload.args !== undefined) throw invalid('payload: args and sealedArgs cannot come together', 'args');
  } else if (!isEmptyArgs(payload.args) && !CLEAR_ARGS_COMMANDS.has(payload.command)) {
    throw invalid('payload: args must be sealed to the hub (sealedArgs)', 'args');
  }
  if ((keyId === undefined) !== (sig === undefined)) throw invalid('envelope: keyId and sig must come together');
  if (keyId !== undefined && sig !== undefined) {
    const key = keys.get(keyId);
    if (key === undefined || key.revokedAt !== undefined) {
      throw new CamveilError('CAMVEIL_E_UNKNOWN_KEY', 'the signing key is not paired or was revoked', { where: 'keyId' });
    }
    const signature = decodeBase64(sig);
    const publicKey = rawEd25519(key.publicKey);
    if (signature?.length !== 64 || publicKey === undefined || !verify(null, payloadBytes, ed25519KeyObject(publicKey), signature)) {
      throw new CamveilError('CAMVEIL_E_SIGNATURE_INVALID', 'the signature does not verify over the payload', { where: 'sig' });
    }
    if (payload.seq <= key.lastSeq) {
      throw new CamveilError('CAMVEIL_E_REPLAY', `sequence number ${payload.seq} is not above the last one used by this key`, { where: 'seq' });
    }
    if (options.commitSeq ?? true) keys.recordSeq(keyId, payload.seq);
  }
  return {
    command: payload.command,
    transaction: payload.transaction,
    args: payload.args,
    sealedArgs,
    signer: keyId,
    seq: payload.seq,
    digest: createHash('sha256').update(payloadBytes).digest('hex'),
  };
}

function isEmptyArgs(args: unknown): boolean {
  return args === undefined || (args !== null && typeof args === 'object' && !Array.isArray(args) && Object.keys(args).length === 0);
}

/**
 * Opens a request's `sealedArgs` with the hub's age identity and parses the JSON inside (the handler's schema
 * checks it next).
 *
 * @throws CamveilError `CAMVEIL_E_REQUEST_INVALID` (where `sealedArgs`) when the ciphertext does not open with
 * `identity` (sealed to another recipient, tampered, truncated), opens to more than MAX_ARGS_BYTES, or is not JSON.
 */
export async function openSealedArgs(sealed: Buffer, identity: string): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of decryptStream(identity, sealed)) {
      size += (chunk as Buffer).length;
      if (size > MAX_ARGS_BYTES) break;
      parts.push(chunk as Buffer);
    }
  } catch {
    throw invalid("payload: sealedArgs does not open with the hub's key (sealed to another recipient, or altered)", 'sealedArgs');
  }
  if (size > MAX_ARGS_BYTES) throw invalid(`payload: sealedArgs open to more than ${MAX_ARGS_BYTES} bytes`, 'sealedArgs');
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw invalid('payload: sealedArgs do not hold JSON', 'sealedArgs');
  }
}

/**
 * The `transaction` of a request that failed verification, when its payload still parses far enough to
 * have one, so the error reply can be matched; undefined otherwise. Never throws.
 */
export function salvageTransaction(raw: Buffer): string | undefined {
  try {
    if (raw.length > MAX_REQUEST_BYTES) return undefined;
    const envelope = JSON.parse(raw.toString('utf8')) as unknown;
    if (envelope === null || typeof envelope !== 'object' || !('payload' in envelope) || typeof envelope.payload !== 'string') return undefined;
    const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as unknown;
    if (payload === null || typeof payload !== 'object' || !('transaction' in payload)) return undefined;
    const t = payload.transaction;
    return typeof t === 'string' && t.length > 0 && t.length <= 128 ? t : undefined;
  } catch {
    return undefined;
  }
}
