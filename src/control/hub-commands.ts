import { z } from 'zod';
import { CamveilError } from '../errors.js';
import { consentNameSchema } from '../policy/vocabulary.js';
import type { ConsentService } from '../policy/consent-service.js';
import { UNSIGNED_ACTOR } from '../policy/withdrawal.js';
import { deleteAllHouseholdData, exportAuditLog, exportHouseholdData, type DataRightsDeps, type DataRightsRequester } from '../rights/data-rights.js';
import { defineHandler, type CommandContext, type CommandHandler } from './command.js';
import { settingsPatchSchema, type CameraSummary, type HubSettings, type SettingsPatch } from './settings.js';

/** Ciphertext an export reply may carry (before base64); larger exports are for the hub's console. */
export const MAX_SEALED_REPLY_BYTES = 2 ** 20;

/**
 * What the hub's commands work on. The consent fields are required; each group after them is optional and
 * its commands are registered only when it is given (so a hub without a store answers `data/*` with
 * `CAMVEIL_E_UNKNOWN_COMMAND` rather than pretending).
 */
export interface HubCommandDeps {
  consent: ConsentService;
  policyInForce: string;
  /** `cameras/list`: ids, names, health and feature status (see `cameraSummaries`). */
  cameras?: () => CameraSummary[];
  /** `config/get`: the settings in force (see `settingsOf`). */
  getConfig?: () => HubSettings;
  /**
   * `config/set`: applies a validated patch in memory and returns the settings now in force. Throws
   * CamveilError `CAMVEIL_E_REQUEST_INVALID` (unknown camera) having applied nothing (`applySettingsPatch`).
   */
  applyConfig?: (patch: SettingsPatch) => HubSettings | Promise<HubSettings>;
  /** `data/export`, `data/delete`, `audit/export`: the hub's database and the modules on it. */
  dataRights?: () => DataRightsDeps;
  /** Cap on the ciphertext of an export reply; default MAX_SEALED_REPLY_BYTES. */
  maxReplyBytes?: number;
}

/** Who a ledger record names for a request: the signing key, or `unsigned-request` for an unsigned withdrawal. */
function actorOf(ctx: CommandContext): { actor: string; requestDigest: string } {
  return { actor: ctx.signer ?? UNSIGNED_ACTOR, requestDigest: ctx.digest };
}

function requesterOf(ctx: CommandContext): DataRightsRequester {
  return { ...(ctx.signer === undefined ? {} : { keyId: ctx.signer }), requestDigest: ctx.digest };
}

const noArgs = z.strictObject({}).optional();
/** `data/delete` names what it does, so a request built for another command cannot be bent into it. */
const deleteArgs = z.strictObject({ confirm: z.literal('delete-all') });

const consentSetArgs = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('grant'), consent: consentNameSchema }),
  z.strictObject({ action: z.literal('withdraw'), consent: consentNameSchema }),
  z.strictObject({ action: z.literal('accept-policy'), version: z.string().min(1).max(64) }),
]);

/**
 * The hub's commands over MQTT that concern consent. `consent/set` is one command for grant, withdraw and
 * policy acceptance, so it is registered as needing no signature at the door, and checks here: a grant or
 * an acceptance widens what flows and needs a paired key's signature; a withdrawal only narrows it and is
 * accepted from anyone who can publish (including the broker operator). An unsigned one stops the flow and
 * destroys nothing (policy/withdrawal.ts): templates, sightings, albums and queued uploads stay, sealed, and
 * the household is told by a sealed `security` event (`unsigned-stop`); a signed grant makes them usable
 * again, a signed withdrawal or `data/delete` deletes them.
 */
export function hubCommands(deps: HubCommandDeps): Record<string, CommandHandler> {
  return { ...consentCommands(deps), ...cameraCommands(deps), ...dataCommands(deps) };
}

function consentCommands(deps: HubCommandDeps): Record<string, CommandHandler> {
  const snapshot = () => ({ consent: deps.consent.snapshot(), mode: deps.consent.mode, policyInForce: deps.policyInForce });
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

/**
 * `cameras/list` and `config/get` are reads anyone may ask for: camera ids, display names, health and geometry
 * describe the household's cameras, so, like every reply's result, they cross the broker only sealed to the
 * household and the paired phones (the dispatcher's reply path, sealed-reply.ts).
 * `config/set` is signed: removing a privacy mask or keeping footage longer widens what the hub keeps and
 * sees, and only geometry, sensitivity, analysis rate and retention can be set at all.
 */
function cameraCommands(deps: HubCommandDeps): Record<string, CommandHandler> {
  const handlers: Record<string, CommandHandler> = {};
  const { cameras, getConfig, applyConfig } = deps;
  if (cameras !== undefined) {
    handlers['cameras/list'] = defineHandler({ requires: 'none', args: noArgs, run: () => ({ cameras: cameras() }) });
  }
  if (getConfig !== undefined) {
    handlers['config/get'] = defineHandler({ requires: 'none', args: noArgs, run: () => getConfig() });
  }
  if (applyConfig !== undefined) {
    // The reply does not echo the settings: the request's args travel sealed, the reply would give them away.
    handlers['config/set'] = defineHandler({
      requires: 'signature',
      args: settingsPatchSchema,
      run: async (args) => {
        await applyConfig(args);
        return { applied: true };
      },
    });
  }
  return handlers;
}

/**
 * The household's data rights over MQTT, all signed: `data/export` and `audit/export` reply with age
 * ciphertext sealed to the household's recipients (base64 in `data.sealed`, at most `maxReplyBytes` before
 * encoding), `data/delete` with the counts. Deleting only narrows what the hub holds, but it cannot be
 * undone, so a broker operator must not be able to ask for it.
 */
function dataCommands(deps: HubCommandDeps): Record<string, CommandHandler> {
  const rights = deps.dataRights;
  if (rights === undefined) return {};
  const maxBytes = deps.maxReplyBytes ?? MAX_SEALED_REPLY_BYTES;
  const reply = (sealed: Buffer) => ({ sealed: sealed.toString('base64'), bytes: sealed.length });
  return {
    'data/export': defineHandler({
      requires: 'signature',
      args: noArgs,
      run: async (_args, ctx) => reply(await exportHouseholdData(rights(), { maxBytes, who: requesterOf(ctx) })),
    }),
    'audit/export': defineHandler({
      requires: 'signature',
      args: noArgs,
      run: async (_args, ctx) => reply(await exportAuditLog(rights(), { maxBytes, who: requesterOf(ctx) })),
    }),
    'data/delete': defineHandler({
      requires: 'signature',
      args: deleteArgs,
      run: async (_args, ctx) => {
        // The consent records go first and the mode is recomputed at once: local-only, uploads cut, before
        // any object is touched. (A change by this connection does not move SQLite's data_version.)
        const counts = await deleteAllHouseholdData(rights(), { who: requesterOf(ctx), stopFlows: () => deps.consent.check() });
        return { deleted: counts, mode: deps.consent.mode };
      },
    }),
  };
}
