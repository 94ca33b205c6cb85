import { z } from 'zod';
import { CAMERA_OBJECT_KINDS, objectKindSchema } from '../policy/vocabulary.js';

/**
 * The manifest sealed in front of every object's body. It is inside the encryption: outside, an object
 * is only a random id, a size and the hub's pseudonym.
 */
export const MANIFEST_VERSION = 1;

/** Object ids: 16 random bytes in lower-case base32 (see newObjectId). */
export const OBJECT_ID_PATTERN = /^[a-z2-7]{26}$/;

export const manifestSchema = z
  .strictObject({
    version: z.literal(MANIFEST_VERSION).describe('Manifest format version'),
    objectId: z.string().regex(OBJECT_ID_PATTERN, 'must be 26 lower-case base32 characters').describe('Random object id, as stored outside'),
    kind: objectKindSchema.describe('What the body is'),
    cameraPseudonym: z
      .string()
      .regex(/^cam_[a-z2-7]{16}$/, 'must be a camera pseudonym (cam_…)')
      .optional()
      .describe('Keyed pseudonym of the camera (clips, snapshots and events; absent for kinds not tied to one camera)'),
    startedAt: z.iso.datetime({ offset: true }).describe('When the captured moment started (ISO 8601)'),
    durationMs: z.number().int().nonnegative().max(86_400_000).optional().describe('Length of a clip'),
    contentType: z
      .string()
      .max(127)
      .regex(/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(;.*)?$/i, 'must be a media type such as video/mp4')
      .describe('Media type of the body'),
    policyVersion: z.string().min(1).max(64).optional().describe('Privacy-policy version in force at capture'),
    consentVersion: z.string().min(1).max(64).optional().describe('Consent record version in force at capture'),
  })
  .superRefine((m, ctx) => {
    if (CAMERA_OBJECT_KINDS.includes(m.kind) && m.cameraPseudonym === undefined) {
      ctx.addIssue({ code: 'custom', path: ['cameraPseudonym'], message: `required for a ${m.kind}` });
    }
  });

export type Manifest = z.infer<typeof manifestSchema>;

/** Every problem of a manifest candidate as `path: reason`; empty when it is valid. */
export function manifestProblems(candidate: unknown): string[] {
  const result = manifestSchema.safeParse(candidate);
  if (result.success) return [];
  return result.error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(manifest)'}: ${issue.message}`);
}
