import { readFile } from 'node:fs/promises';
import { CamveilError } from '../../errors.js';
import type { VerifiedGuardianAttestation } from '../../policy/consent-ledger.js';
import type { FaceEngine } from './face-engine.js';
import { readImageFile, type FaceImage } from './image-input.js';

/**
 * What an enrolment asks for, and its photos: from a photo to the template of the one face it shows, and
 * the photo's bytes when the household asks to keep it. Photos are read, described and dropped; nothing
 * here writes anything.
 */

/** Templates from photos per person: more add little and slow every match. */
export const MAX_PHOTO_TEMPLATES = 20;

export interface EnrolRequest {
  name: string;
  /**
   * Each showing the person's face and no other usable face: image files, or images already in memory
   * (photos sent sealed by the app, a crop made on the hub) — those never touch the disk.
   */
  photos: readonly Photo[];
  minor: boolean;
  /**
   * For a minor: the guardian's attestation, verified — signed by a paired key (control/guardian-attestation.ts)
   * or vouched for at the hub's console. An attestation nobody checked is refused.
   */
  guardianAttestation?: VerifiedGuardianAttestation;
  /** Keep the photos' bytes, sealed to the hub (default: not kept). */
  keepPhotos?: boolean;
  /** Who asked: the paired key that signed the request and its digest (recorded as the ledger's actor); default the console. */
  origin?: ChangeOrigin;
}

/** Who asked for a change, recorded in the audit log: a paired key id and the request's digest. */
export interface ChangeOrigin {
  /** A paired key id; `unsigned-request` only for held data deleted past its retention (purgeAfterWithdrawal). */
  keyId?: string;
  requestDigest?: string;
}

/** An image file, or an image in memory with its encoded bytes (needed only when the photo is kept). */
export type Photo = string | { label: string; image: FaceImage; bytes?: Uint8Array };

/**
 * The template of the one usable face in a photo. Refuses, naming the photo (by its position, and its
 * path for the local operator), when it holds no face, only unusable ones, or several usable ones.
 */
export async function templateOf(engine: FaceEngine, photo: Photo, index: number): Promise<Float32Array> {
  const file = typeof photo === 'string' ? photo : photo.label;
  const where = `photo ${index + 1} (${file})`;
  const image = typeof photo === 'string' ? await readImageFile(photo) : photo.image;
  const faces = await engine.detect(image, { pad: 'auto' });
  const usable = faces.filter((f) => f.quality.ok);
  if (usable.length > 1) {
    throw new CamveilError('CAMVEIL_E_SEVERAL_FACES', `${where}: ${usable.length} usable faces; use a photo or crop showing only the person`, { where: file });
  }
  const face = usable[0];
  if (face === undefined) {
    const why = faces.length === 0 ? 'no face found' : `face ${[...new Set(faces.map((f) => f.quality.reason))].join(', ').replace('too-small', `too small (under 40 px)`)}`;
    throw new CamveilError('CAMVEIL_E_NO_FACE', `${where}: ${why}`, { where: file });
  }
  return engine.describe(image, face);
}

/** The bytes of photos to keep, read only when the household asked to keep them. */
export async function photoBytes(photos: readonly Photo[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const [i, p] of photos.entries()) {
    if (typeof p === 'string') out.push(await readFile(p));
    else if (p.bytes !== undefined) out.push(p.bytes);
    else throw new CamveilError('CAMVEIL_E_INTERNAL', `photo ${i + 1}: its encoded bytes are needed to keep it`, { where: 'photos' });
  }
  return out;
}
