import { z } from 'zod';
import { recipientSchema } from '../crypto/recipients.js';
import { defineHandler, type CommandHandler, type ControlAudit } from './command.js';
import { rawEd25519, type KeyRegistry } from './key-registry.js';
import { CamveilError } from '../errors.js';
import { hubProof, openLabel, type Pairing } from './pairing.js';

const publicKey = z.string().refine((v) => rawEd25519(v) !== undefined, 'must be a 32-byte Ed25519 public key in base64');
const label = z.string().min(1).max(64);
const noArgs = z.strictObject({}).optional();
/** The audit log's reason alphabet. */
const reason = z.string().regex(/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/, 'must be a reason token');

/** `sealedLabel`: the device label sealed under the pairing code's key (pairing.ts): `pair` args travel outside the hub's seal. */
export const pairArgs = z.strictObject({ publicKey, recipient: recipientSchema, sealedLabel: z.string().max(512).optional(), proof: z.string().max(64) });
export const addArgs = z.strictObject({ publicKey, recipient: recipientSchema, label: label.optional() });
export const revokeArgs = z.strictObject({ keyId: z.string().min(1).max(128), reason: reason.optional() });

export interface BuiltinDeps {
  registry: KeyRegistry;
  pairing: Pairing;
  audit: ControlAudit;
  /** What the app pins at pairing: the hub's id, base topic, signing public key and age recipient. */
  hub: { hubId: string; baseTopic: string; signingKey: string; recipient: string };
  /** The `status` reply: health and the full state (sealed, like every reply's result, by the dispatcher). */
  status: () => object | Promise<object>;
}

/**
 * The commands every hub answers: `pair` (unsigned: the proof of the code is its authority; the answer
 * carries the hub's keys and the hub's own proof of the code over them, see pairing.ts), `devices/list`
 * and `status` (reads), `devices/add` and `devices/revoke` (signed by a paired key).
 */
export function builtinCommands(deps: BuiltinDeps): Record<string, CommandHandler> {
  const { registry, pairing, audit } = deps;
  return {
    pair: defineHandler({
      requires: 'none',
      args: pairArgs,
      run: async (args, ctx) => {
        const claim = { hubId: deps.hub.hubId, publicKey: args.publicKey, recipient: args.recipient, sealedLabel: args.sealedLabel };
        const { value: key, key: codeKey } = await pairing.consume(claim, args.proof, ctx.now, (codeKey) => {
          const opened = args.sealedLabel === undefined ? undefined : label.safeParse(openLabel(codeKey, args.sealedLabel));
          if (opened?.success === false) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', 'sealedLabel: must be a label of 1–64 characters sealed under the code', { where: 'sealedLabel' });
          return registry.add({ publicKey: args.publicKey, recipient: args.recipient, label: opened?.data }, ctx.now);
        });
        audit.append('key.paired', { keyId: key.keyId, role: 'app', requestDigest: ctx.digest });
        const proof = hubProof(codeKey, { ...deps.hub, appKey: args.publicKey });
        return { keyId: key.keyId, hub: deps.hub, proof };
      },
    }),
    'devices/add': defineHandler({
      requires: 'signature',
      args: addArgs,
      run: (args, ctx) => {
        const key = registry.add({ publicKey: args.publicKey, recipient: args.recipient, label: args.label }, ctx.now);
        audit.append('key.paired', { keyId: key.keyId, role: 'app', requestDigest: ctx.digest });
        return { keyId: key.keyId };
      },
    }),
    'devices/revoke': defineHandler({
      requires: 'signature',
      args: revokeArgs,
      run: (args, ctx) => {
        const key = registry.revoke(args.keyId, ctx.now);
        audit.append('key.revoked', { keyId: key.keyId, reason: args.reason ?? 'user.revoked', requestDigest: ctx.digest });
        return { keyId: key.keyId, revokedAt: key.revokedAt };
      },
    }),
    'devices/list': defineHandler({
      requires: 'none',
      args: noArgs,
      run: () => {
        const keys = registry.list();
        // Labels are chosen by people ("Anna's phone"): like every reply's result, the list crosses the broker
        // only sealed to the household and the paired phones (the dispatcher's reply path), so not sealed twice.
        return {
          devices: keys.map((k) => ({
            keyId: k.keyId,
            pairedAt: k.pairedAt,
            ...(k.label === undefined ? {} : { label: k.label }),
            ...(k.revokedAt === undefined ? {} : { revokedAt: k.revokedAt }),
          })),
        };
      },
    }),
    status: defineHandler({
      requires: 'none',
      args: noArgs,
      run: () => deps.status(),
    }),
  };
}
