import { z } from 'zod';
import { CamveilError } from '../errors.js';
import { CONSENT_NAMES, type ConsentLedger } from '../policy/consent-ledger.js';
import type { ConsentService } from '../policy/consent-service.js';
import { defineHandler, type CommandContext, type CommandHandler } from './command.js';

export interface HubCommandDeps {
  consent: ConsentService;
  ledger: ConsentLedger;
  policyInForce: string;
}

/** Who a ledger record names for a request: the signing key, or `unsigned-request` for an unsigned withdrawal. */
function actorOf(ctx: CommandContext): { actor: string; requestDigest: string } {
  return { actor: ctx.signer ?? 'unsigned-request', requestDigest: ctx.digest };
}

const consentSetArgs = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('grant'), consent: z.enum(CONSENT_NAMES) }),
  z.strictObject({ action: z.literal('withdraw'), consent: z.enum(CONSENT_NAMES) }),
  z.strictObject({ action: z.literal('accept-policy'), version: z.string().min(1).max(64) }),
]);

/**
 * The hub's commands over MQTT that concern consent. `consent/set` is one command for grant, withdraw and
 * policy acceptance, so it is registered as needing no signature at the door, and checks here: a grant or
 * an acceptance widens what flows and needs a paired key's signature; a withdrawal only narrows it and is
 * accepted from anyone who can publish (including the broker operator — the worst they can do is stop
 * uploads, which the household can see and undo).
 */
export function hubCommands(deps: HubCommandDeps): Record<string, CommandHandler> {
  const snapshot = () => {
    let consent: object | 'unreadable';
    try {
      consent = deps.ledger.currentConsent();
    } catch {
      consent = 'unreadable';
    }
    return { consent, mode: deps.consent.mode, policyInForce: deps.policyInForce };
  };
  return {
    'consent/get': defineHandler({ requires: 'none', args: z.strictObject({}).optional(), run: () => snapshot() }),
    'consent/set': defineHandler({
      requires: 'none',
      args: consentSetArgs,
      run: async (args, ctx) => {
        if (args.action !== 'withdraw' && ctx.signer === undefined) {
          throw new CamveilError('CAMVEIL_E_NOT_AUTHORISED', `consent/set ${args.action} widens what the hub shares: it must be signed by a paired app key`);
        }
        if (args.action === 'grant') await deps.consent.grant(args.consent, actorOf(ctx));
        else if (args.action === 'withdraw') await deps.consent.withdraw(args.consent, actorOf(ctx));
        else await deps.consent.acceptPolicy(args.version, actorOf(ctx));
        return snapshot();
      },
    }),
  };
}
