import type { z } from 'zod';
import type { AuditLog } from '../audit/audit-log.js';
import type { Logger } from '../log.js';

/** What a command handler learns about the request it serves. */
export interface CommandContext {
  /** Key id of the paired key that signed the request; undefined when it was unsigned. */
  signer: string | undefined;
  transaction: string;
  /** SHA-256 hex of the payload bytes, for audit and consent records. */
  digest: string;
  /** The hub clock when the request was checked, Unix milliseconds. */
  now: number;
}

/**
 * One MQTT command. `requires: 'signature'` for every command that widens data flow (consent grants,
 * enrolment, camera credentials, configuration that widens, adding a device): the broker can publish
 * anything, but it cannot sign. Reads and withdrawals may be `'none'`.
 */
export interface CommandHandler {
  requires: 'none' | 'signature';
  /** Validates `args`; should reject unknown keys (z.strictObject). */
  args: z.ZodType;
  /** Returns the reply's `data` (JSON); throws CamveilError for an error reply with its code. */
  run(args: unknown, ctx: CommandContext): unknown;
}

/** A handler whose `run` sees the output type of its schema. */
export function defineHandler<S extends z.ZodType>(handler: {
  requires: 'none' | 'signature';
  args: S;
  run(args: z.output<S>, ctx: CommandContext): unknown;
}): CommandHandler {
  return handler;
}

/** The part of AuditLog the control plane uses. */
export type ControlAudit = Pick<AuditLog, 'append'>;

/** The part of pino the control plane uses. Never given labels, arguments or keys: ids, codes and counts. */
export type ControlLogger = Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;

/** The reply published on `response/<command>`, zigbee2mqtt's shape: `{data, status, error?, transaction?}`. */
export type ControlResponse =
  | { data: unknown; status: 'ok'; transaction?: string }
  | { data: Record<string, never>; status: 'error'; error: { code: string; message: string }; transaction?: string };
