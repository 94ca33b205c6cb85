import { sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { CamveilError } from '../errors.js';
import { issueText, MAX_CLOCK_SKEW_MS } from './envelope.js';
import { decodeBase64, ed25519KeyObject, rawEd25519 } from './key-registry.js';
import { wireResponseSchema } from './sealed-reply.js';

/**
 * Messages from the hub to the app (MQTT API version 2): replies, sealed events and the retained state, each
 * published as
 *
 * ```json
 * { "payload": "<base64 of the payload bytes>", "sig": "<base64 Ed25519 signature by the hub key>" }
 * ```
 *
 * The signature covers exactly the payload bytes. The payload is JSON naming the protocol version, the kind of
 * message, the hub id and base topic it comes from, and the hub clock; a reply also names the command and
 * carries the reply (with the request's transaction): its status and error code in clear, its result and
 * error message sealed to the household and the paired phones (sealed-reply.ts). The app pins the hub's public key at pairing and refuses
 * anything that is unsigned, signed by another key, for another hub, of the wrong kind, stale, or (for a reply)
 * for another request: the broker can drop messages but can no longer write them.
 */
export const HUB_PROTOCOL_VERSION = 2;
/** Largest hub message the app reads (a sealed state of many cameras stays well under it). */
export const MAX_HUB_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The hub's side: what it signs with and what the app pins. */
export interface HubSigner {
  hubId: string;
  baseTopic: string;
  signingKey: KeyObject;
  /** Raw 32-byte Ed25519 public key, base64. */
  signingPublicKey: string;
}

/** What the app pins at pairing, per hub. */
export interface PinnedHub {
  hubId: string;
  baseTopic: string;
  /** The hub's raw Ed25519 public key, base64. */
  signingKey: string;
  /** The hub's age recipient: the only key the app seals passwords, names and photos to. */
  recipient: string;
}

export const pinnedHubSchema = z.strictObject({
  hubId: z.string().min(1).max(64),
  baseTopic: z.string().min(1).max(256),
  signingKey: z.string().refine((v) => rawEd25519(v) !== undefined, 'must be a 32-byte Ed25519 public key in base64'),
  recipient: z.string().regex(/^age1[0-9a-z]+$/, 'must be an age recipient'),
});

const envelopeSchema = z.strictObject({ payload: z.string().min(1), sig: z.string().min(1).max(256) });

const common = {
  v: z.literal(HUB_PROTOCOL_VERSION),
  hub: z.string(),
  base: z.string(),
  ts: z.number().int().min(0),
};

/** Clear health: what any broker client may see (nothing that changes with what a camera sees). */
export const healthSchema = z.strictObject({
  availability: z.enum(['online', 'offline']),
  protocol: z.literal(HUB_PROTOCOL_VERSION),
  cameras: z.record(z.string(), z.enum(['streaming', 'reconnecting', 'failed'])),
});
export type HubHealth = z.infer<typeof healthSchema>;

const payloadSchemas = {
  response: z.strictObject({ ...common, kind: z.literal('response'), command: z.string(), response: wireResponseSchema }),
  event: z.strictObject({ ...common, kind: z.literal('event'), id: z.string().min(1).max(64), sealed: z.string().min(1) }),
  state: z.strictObject({ ...common, kind: z.literal('state'), health: healthSchema, sealed: z.string().min(1).optional() }),
};
export type HubMessageKind = keyof typeof payloadSchemas;
export type HubPayload<K extends HubMessageKind> = z.infer<(typeof payloadSchemas)[K]>;

/** The payload fields the caller gives; version, kind, hub, base topic and time are added. */
type Body<K extends HubMessageKind> = Omit<HubPayload<K>, 'v' | 'kind' | 'hub' | 'base' | 'ts'>;

/** Signs a hub message of `kind` with `body`; returns the bytes to publish. */
export function signHubMessage<K extends HubMessageKind>(signer: HubSigner, kind: K, body: Body<K>, now: number): Buffer {
  const payload = Buffer.from(
    JSON.stringify({ v: HUB_PROTOCOL_VERSION, kind, hub: signer.hubId, base: signer.baseTopic, ts: now, ...body }),
    'utf8',
  );
  const sig = sign(null, payload, signer.signingKey);
  return Buffer.from(JSON.stringify({ payload: payload.toString('base64'), sig: sig.toString('base64') }), 'utf8');
}

function unverified(message: string, where: string): CamveilError {
  return new CamveilError('CAMVEIL_E_HUB_UNVERIFIED', message, { where });
}

/** The payload of a hub message without checking anything (to find a reply's transaction); undefined when it has none. */
export function peekHubPayload(raw: Buffer): unknown {
  try {
    if (raw.length > MAX_HUB_MESSAGE_BYTES) return undefined;
    const outer = JSON.parse(raw.toString('utf8')) as unknown;
    if (outer !== null && typeof outer === 'object' && 'payload' in outer && typeof outer.payload === 'string') {
      return JSON.parse(Buffer.from(outer.payload, 'base64').toString('utf8')) as unknown;
    }
    return outer;
  } catch {
    return undefined;
  }
}

/**
 * Checks one hub message against the pinned hub: envelope, signature by the pinned key over the exact
 * payload bytes, version, kind, hub id, base topic, and `ts` within ±5 minutes of `now`.
 *
 * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` saying which check failed.
 */
export function openHubMessage<K extends HubMessageKind>(raw: Buffer, pinned: PinnedHub, kind: K, now: number): HubPayload<K> {
  if (raw.length > MAX_HUB_MESSAGE_BYTES) throw unverified('hub message is too large', 'message');
  let outer: unknown;
  try {
    outer = JSON.parse(raw.toString('utf8'));
  } catch {
    throw unverified('hub message is not a signed envelope (not JSON)', 'message');
  }
  const envelope = envelopeSchema.safeParse(outer);
  if (!envelope.success) throw unverified(`hub message is not signed (${issueText(envelope.error)})`, 'sig');
  const payloadBytes = decodeBase64(envelope.data.payload);
  const signature = decodeBase64(envelope.data.sig);
  const key = rawEd25519(pinned.signingKey);
  if (payloadBytes === undefined || signature?.length !== 64 || key === undefined || !verify(null, payloadBytes, ed25519KeyObject(key), signature)) {
    throw unverified('hub message signature does not verify with the pinned hub key', 'sig');
  }
  let json: unknown;
  try {
    json = JSON.parse(payloadBytes.toString('utf8'));
  } catch {
    throw unverified('hub message payload is not JSON', 'payload');
  }
  const parsed = payloadSchemas[kind].safeParse(json);
  if (!parsed.success) throw unverified(`hub message is not a version ${HUB_PROTOCOL_VERSION} ${kind}: ${issueText(parsed.error)}`, 'payload');
  const payload = parsed.data as HubPayload<K>;
  if (payload.hub !== pinned.hubId || payload.base !== pinned.baseTopic) throw unverified('hub message names another hub', 'hub');
  if (Math.abs(payload.ts - now) > MAX_CLOCK_SKEW_MS) throw unverified('hub message is stale (ts more than 5 minutes away)', 'ts');
  return payload;
}
