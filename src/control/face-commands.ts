import { z } from 'zod';
import type { EnrolmentStore } from '../analysis/faces/enrolment.js';
import { decryptToBuffer, encryptToBuffer } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import type { GateDecision } from '../policy/gate.js';
import { defineHandler, type CommandContext, type CommandHandler } from './command.js';
import { decodeBase64, type KeyRegistry } from './key-registry.js';

export interface FaceCommandDeps {
  people: () => EnrolmentStore;
  /** The hub's own age identity: opens what the app sealed for the hub (names, photos). */
  hubIdentity: string;
  registry: KeyRegistry;
  mayEnrol: () => GateDecision;
}

/** What the app seals to the hub's recipient for `faces/enroll`: personal data never crosses the broker in clear. */
export const enrolmentPayloadSchema = z.strictObject({
  name: z.string().min(1).max(128),
  minor: z.boolean().default(false),
  guardianAttestation: z.strictObject({ guardianKeyId: z.string().min(1).max(128), statement: z.string().min(1).max(2000), at: z.iso.datetime({ offset: true }) }).optional(),
  /** JPEG/PNG/WebP photos, base64; each must show exactly one usable face. */
  photos: z.array(z.string().min(1)).min(1).max(5),
});
export type EnrolmentPayload = z.infer<typeof enrolmentPayloadSchema>;

const sealed = z.string().min(1).max(40 * 1024 * 1024);
const personId = z.string().regex(/^person_[a-z2-7]{16}$/, 'must be a person id (person_…)');

async function openSealed<T>(hubIdentity: string, text: string, schema: z.ZodType<T>, what: string): Promise<T> {
  const bytes = decodeBase64(text);
  if (bytes === undefined) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `${what}: not base64`);
  let json: unknown;
  try {
    json = JSON.parse((await decryptToBuffer(hubIdentity, bytes)).toString('utf8'));
  } catch {
    throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `${what}: must be JSON sealed with age to the hub's recipient (see status.hubRecipient)`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `${what}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

function signerRecipient(deps: FaceCommandDeps, ctx: CommandContext): string {
  const key = ctx.signer === undefined ? undefined : deps.registry.get(ctx.signer);
  if (key === undefined) throw new CamveilError('CAMVEIL_E_NOT_AUTHORISED', 'this command must be signed by a paired app key');
  return key.recipient;
}

/**
 * Face enrolment over MQTT. Every argument that is personal data (names, photos) is sealed with age to the
 * hub's own recipient inside the signed payload, and every name in a reply is sealed to the requesting
 * phone's recipient: the broker sees only ids and counts. All four commands need a paired key's signature
 * (enrolment widens what the hub processes; listing reveals who is enrolled; renaming and deleting change
 * the household's data).
 */
export function faceCommands(deps: FaceCommandDeps): Record<string, CommandHandler> {
  return {
    'faces/list': defineHandler({
      requires: 'signature',
      args: z.strictObject({}).optional(),
      run: async (_args, ctx) => {
        const people = await deps.people().list();
        const names = await encryptToBuffer([signerRecipient(deps, ctx)], Buffer.from(JSON.stringify(people.map((p) => ({ personId: p.personId, name: p.name })))));
        return { people: people.map((p) => ({ personId: p.personId, minor: p.minor, templates: p.templates, enrolledAt: p.enrolledAt })), sealedNames: names.toString('base64') };
      },
    }),
    'faces/enroll': defineHandler({
      requires: 'signature',
      args: z.strictObject({ sealed }),
      run: async (args, ctx) => {
        const decision = deps.mayEnrol();
        if (!decision.allowed) throw new CamveilError('CAMVEIL_E_CONSENT_REQUIRED', `face enrolment is not allowed now: ${decision.reason}`);
        const payload = await openSealed(deps.hubIdentity, args.sealed, enrolmentPayloadSchema, 'sealed');
        // The face model and image decoding are loaded only when someone enrols, not with the hub.
        const [{ FaceEngine }, { decodeImage }] = await Promise.all([import('../analysis/faces/face-engine.js'), import('../analysis/faces/image-input.js')]);
        const photos = [];
        for (const [i, text] of payload.photos.entries()) {
          const bytes = decodeBase64(text);
          if (bytes === undefined) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `photo ${i + 1}: not base64`);
          photos.push({ label: `photo ${i + 1}`, image: await decodeImage(bytes, `photo ${i + 1}`) });
        }
        const engine = await FaceEngine.open();
        try {
          const person = await deps.people().enroll(engine, {
            name: payload.name,
            photos,
            minor: payload.minor,
            ...(payload.guardianAttestation === undefined ? {} : { guardianAttestation: payload.guardianAttestation }),
          });
          void ctx;
          return { personId: person.personId, minor: person.minor, templates: person.templates };
        } finally {
          engine.unload();
        }
      },
    }),
    'faces/rename': defineHandler({
      requires: 'signature',
      args: z.strictObject({ personId, sealed }),
      run: async (args) => {
        const { name } = await openSealed(deps.hubIdentity, args.sealed, z.strictObject({ name: z.string().min(1).max(128) }), 'sealed');
        await deps.people().rename(args.personId, name);
        return { personId: args.personId };
      },
    }),
    'faces/delete': defineHandler({
      requires: 'signature',
      args: z.union([z.strictObject({ personId }), z.strictObject({ all: z.literal(true) })]),
      run: (args) => {
        if ('all' in args) return { deleted: deps.people().deleteAll() };
        deps.people().delete(args.personId);
        return { deleted: 1 };
      },
    }),
  };
}
