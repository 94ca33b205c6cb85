import { z } from 'zod';
import type { ChangeOrigin, Photo } from '../analysis/faces/enrolment-request.js';
import type { EnrolmentStore } from '../analysis/faces/enrolment.js';
import type { FaceEngine } from '../analysis/faces/face-engine.js';
import { SIGHTING_ID_PATTERN } from '../analysis/faces/sightings.js';
import { encryptToBuffer } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import type { GateDecision } from '../policy/gate.js';
import { defineHandler, type CommandContext, type CommandHandler } from './command.js';
import { enrolmentSubject, signedGuardianAttestationSchema, verifyGuardianAttestation } from './guardian-attestation.js';
import { decodeBase64, type KeyRegistry } from './key-registry.js';
import { MAX_PHOTO_BASE64, MAX_PHOTOS } from './request-limits.js';

export interface FaceCommandDeps {
  people: () => EnrolmentStore;
  registry: KeyRegistry;
  mayEnrol: () => GateDecision;
  /** The hub id a guardian's attestation must name; without it no minor can be enrolled over MQTT. */
  hubId?: string;
}

const personId = z.string().regex(/^person_[a-z2-7]{16}$/, 'must be a person id (person_…)');

/** The args of `faces/enrol` (sealed to the hub as a whole, like every request's: envelope.ts). */
export const enrolmentPayloadSchema = z.strictObject({
  name: z.string().min(1).max(128),
  minor: z.boolean().default(false),
  /** For a minor: signed by the guardian's paired key over this hub, this name and these photos (guardian-attestation.ts). */
  guardianAttestation: signedGuardianAttestationSchema.optional(),
  /** JPEG/PNG/WebP photos, base64; each must show exactly one usable face (`camveil app` scales them: request-limits.ts). */
  photos: z.array(z.string().min(1).max(MAX_PHOTO_BASE64)).min(1).max(MAX_PHOTOS),
  /** Keep the photos on the hub, sealed to its key (default: described and dropped). */
  keepPhotos: z.boolean().default(false),
});

/** The args of `faces/add-photos`. */
export const addPhotosPayloadSchema = z.strictObject({
  personId,
  photos: z.array(z.string().min(1).max(MAX_PHOTO_BASE64)).min(1).max(MAX_PHOTOS),
  keepPhotos: z.boolean().default(false),
});

const sightingId = z.string().regex(SIGHTING_ID_PATTERN, 'must be a sighting id (sight_…)');

function notFound(id: string): never {
  throw new CamveilError('CAMVEIL_E_PERSON_NOT_FOUND', `no enrolled person ${id}`, { where: 'personId' });
}

/** Decodes the base64 photos of a sealed payload; the bytes stay in memory (kept only when asked, sealed). */
async function photosOf(texts: readonly string[]): Promise<Photo[]> {
  const { decodeImage } = await import('../analysis/faces/image-input.js');
  const photos: Photo[] = [];
  for (const [i, text] of texts.entries()) {
    const bytes = decodeBase64(text);
    if (bytes === undefined) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `photo ${i + 1}: not base64`);
    photos.push({ label: `photo ${i + 1}`, image: await decodeImage(bytes, `photo ${i + 1}`), bytes });
  }
  return photos;
}

/** The face model is imported and loaded only while someone enrols or adds photos, not with the hub. */
async function withEngine<T>(use: (engine: FaceEngine) => Promise<T>): Promise<T> {
  const { FaceEngine } = await import('../analysis/faces/face-engine.js');
  return FaceEngine.using(use);
}

function requireEnrolment(deps: FaceCommandDeps, what: string): void {
  const decision = deps.mayEnrol();
  if (!decision.allowed) throw new CamveilError('CAMVEIL_E_CONSENT_REQUIRED', `${what} is not allowed now: ${decision.reason}`);
}

/** Who asked, for the audit log: the paired key and the request's digest. */
function originOf(ctx: CommandContext): ChangeOrigin {
  return { ...(ctx.signer === undefined ? {} : { keyId: ctx.signer }), requestDigest: ctx.digest };
}

function signerRecipient(deps: FaceCommandDeps, ctx: CommandContext): string {
  const key = ctx.signer === undefined ? undefined : deps.registry.get(ctx.signer);
  if (key === undefined) throw new CamveilError('CAMVEIL_E_NOT_AUTHORISED', 'this command must be signed by a paired app key');
  return key.recipient;
}

/**
 * Face enrolment over MQTT. The args (names, photos) arrive sealed with age to the hub's own recipient as a
 * whole (envelope.ts; the dispatcher opens them), and every name or sighting in a reply is sealed to the
 * requesting phone's recipient: the broker sees only ids and counts. Every command needs a paired key's
 * signature (enrolling, adding photos and correcting widen what the hub keeps; listing people or
 * sightings reveals who is enrolled and who was seen; renaming and deleting change the household's data).
 */
export function faceCommands(deps: FaceCommandDeps): Record<string, CommandHandler> {
  return {
    'faces/list': defineHandler({
      requires: 'signature',
      args: z.strictObject({}).optional(),
      run: async (_args, ctx) => {
        const people = await deps.people().list();
        const names = await encryptToBuffer([signerRecipient(deps, ctx)], Buffer.from(JSON.stringify(people.map((p) => ({ personId: p.personId, name: p.name })))));
        return {
          people: people.map((p) => ({ personId: p.personId, minor: p.minor, templates: p.templates, negatives: p.negatives, photosKept: p.photosKept, enrolledAt: p.enrolledAt })),
          sealedNames: names.toString('base64'),
        };
      },
    }),
    'faces/enrol': defineHandler({
      requires: 'signature',
      args: enrolmentPayloadSchema,
      run: async (payload, ctx) => {
        requireEnrolment(deps, 'face enrolment');
        // A minor's guardian is checked before any photo is decoded or the model loaded.
        const guardian = payload.minor
          ? verifyGuardianAttestation(payload.guardianAttestation, {
              registry: deps.registry,
              hubId: deps.hubId ?? '',
              subject: enrolmentSubject(payload.name, payload.photos),
              now: ctx.now,
            })
          : undefined;
        const photos = await photosOf(payload.photos);
        const person = await withEngine((engine) =>
          deps.people().enrol(engine, {
            name: payload.name,
            photos,
            minor: payload.minor,
            keepPhotos: payload.keepPhotos,
            ...(guardian === undefined ? {} : { guardianAttestation: guardian }),
            // The ledger names the key that signed the request, not the hub's console.
            origin: originOf(ctx),
          }),
        );
        return { personId: person.personId, minor: person.minor, templates: person.templates, photosKept: person.photosKept };
      },
    }),
    'faces/add-photos': defineHandler({
      requires: 'signature',
      args: addPhotosPayloadSchema,
      run: async (args, ctx) => {
        requireEnrolment(deps, 'adding face photos');
        // Refused before the photos are decoded and the model loaded.
        if (!deps.people().ids().includes(args.personId)) notFound(args.personId);
        const photos = await photosOf(args.photos);
        const person = await withEngine((engine) =>
          deps.people().addPhotos(engine, args.personId, photos, { keepPhotos: args.keepPhotos, origin: originOf(ctx) }),
        );
        return { personId: person.personId, templates: person.templates, photosKept: person.photosKept };
      },
    }),
    'faces/correct': defineHandler({
      requires: 'signature',
      args: z.strictObject({ sightingId, personId, verdict: z.enum(['is', 'is-not']) }),
      run: async (args, ctx) => {
        requireEnrolment(deps, 'a face correction');
        const person = await deps.people().correct(args.sightingId, args.personId, args.verdict, originOf(ctx));
        return { personId: person.personId, sightingId: args.sightingId, verdict: args.verdict, templates: person.templates, negatives: person.negatives };
      },
    }),
    'faces/sightings': defineHandler({
      requires: 'signature',
      args: z.strictObject({ limit: z.number().int().min(1).max(500).optional() }).optional(),
      run: async (args, ctx) => {
        const recipient = signerRecipient(deps, ctx);
        const sightings = await deps.people().sightings.list(args?.limit ?? 100);
        // Who was seen where and when: only the phone that asked can read it.
        const sealedSightings = await encryptToBuffer([recipient], Buffer.from(JSON.stringify(sightings)));
        return { count: sightings.length, sealedSightings: sealedSightings.toString('base64') };
      },
    }),
    'faces/rename': defineHandler({
      requires: 'signature',
      args: z.strictObject({ personId, name: z.string().min(1).max(128) }),
      run: async (args) => {
        await deps.people().rename(args.personId, args.name);
        return { personId: args.personId };
      },
    }),
    'faces/delete': defineHandler({
      requires: 'signature',
      args: z.union([z.strictObject({ personId }), z.strictObject({ all: z.literal(true) })]),
      run: (args, ctx) => {
        // The ledger and audit log name the key that signed the deletion, not the hub's console.
        if ('all' in args) return { deleted: deps.people().deleteAll(originOf(ctx)) };
        deps.people().delete(args.personId, originOf(ctx));
        return { deleted: 1 };
      },
    }),
  };
}
