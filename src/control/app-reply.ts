import { z } from 'zod';
import { CamveilError } from '../errors.js';
import type { ControlResponse } from './command.js';
import { openHubMessage, pinnedHubSchema, type PinnedHub } from './hub-message.js';
import { openReply } from './sealed-reply.js';

/** What a successful `pair` reply carries: the hub's keys and its proof of the code over them. */
export const pairAnswerSchema = z.object({ keyId: z.string(), hub: pinnedHubSchema, proof: z.string().max(64) });

export function unverified(message: string, where: string): CamveilError {
  return new CamveilError('CAMVEIL_E_HUB_UNVERIFIED', message, { where });
}

/** The reply inside a (possibly forged) hub message payload, unchecked. */
export function responseOf(payload: unknown): ControlResponse | undefined {
  if (payload === null || typeof payload !== 'object' || !('response' in payload)) return undefined;
  const response = payload.response;
  return response !== null && typeof response === 'object' && 'status' in response ? (response as ControlResponse) : undefined;
}

/** The transaction a (possibly forged) hub message payload names, unchecked. */
export function transactionOf(payload: unknown): unknown {
  return payload !== null && typeof payload === 'object' && 'transaction' in payload ? payload.transaction : undefined;
}

/**
 * Opens the reply `raw` to `command`'s request `transaction`: signed by the pinned hub for this command and
 * transaction, its sealed result opened with `identities`.
 *
 * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when the reply is not the hub's for this request;
 * `CAMVEIL_E_REPLY_SEALED` when an `ok` result does not open with `identities` (sealed-reply.ts).
 */
export async function openAppReply(raw: Buffer, pinned: PinnedHub, request: { command: string; transaction: string }, identities: readonly string[] | undefined, now: number): Promise<ControlResponse> {
  const { command, transaction } = request;
  const payload = openHubMessage(raw, pinned, 'response', now);
  if (payload.command !== command) throw unverified(`the reply is for command ${payload.command.slice(0, 64)}, not ${command}`, 'command');
  if (payload.response.transaction !== transaction) throw unverified('the reply is for another request (transaction)', 'transaction');
  return openReply(command, payload.response, identities);
}
