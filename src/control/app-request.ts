import { sign } from 'node:crypto';
import { encryptToBuffer } from '../crypto/age-stream.js';
import type { AppKey } from './app-key.js';
import { CLEAR_ARGS_COMMANDS } from './envelope.js';

/** A request ready to publish: its envelope bytes and transaction. */
export interface PreparedRequest {
  command: string;
  transaction: string;
  bytes: Buffer;
}

/**
 * A request's args as they travel: `{args}` in clear when empty (or for `pair`), else `{sealedArgs}` sealed
 * with age to `hubRecipient()` (asked only then: it throws when the app has not paired).
 */
export async function requestArgs(command: string, args: unknown, hubRecipient: () => string): Promise<{ args?: unknown; sealedArgs?: string }> {
  const empty = args === undefined || (args !== null && typeof args === 'object' && !Array.isArray(args) && Object.keys(args).length === 0);
  if (empty || CLEAR_ARGS_COMMANDS.has(command)) return args === undefined ? {} : { args };
  const sealed = await encryptToBuffer([hubRecipient()], Buffer.from(JSON.stringify(args), 'utf8'));
  return { sealedArgs: sealed.toString('base64') };
}

/** The envelope bytes of `request`: its JSON as the payload, signed by `key` when one is given. */
export function requestEnvelope(request: object, key: AppKey | undefined): Buffer {
  const payload = Buffer.from(JSON.stringify(request), 'utf8');
  const envelope: Record<string, string> = { payload: payload.toString('base64') };
  if (key !== undefined) {
    envelope.keyId = key.keyId;
    envelope.sig = sign(null, payload, key.privateKey).toString('base64');
  }
  return Buffer.from(JSON.stringify(envelope), 'utf8');
}
