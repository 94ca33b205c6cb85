import { CamveilError } from '../../errors.js';

/**
 * What is sealed for one enrolled person (to the hub's own recipient, in `faces_people.sealed`): the name,
 * the templates from photos and the household's corrections. Pure helpers over it; the store
 * (enrolment.ts) seals, opens and writes it.
 */

/** Longest name accepted, in characters. */
export const MAX_NAME_LENGTH = 100;
/** Corrections ("this is X" / "this is not X") kept per person. */
export const MAX_CORRECTIONS = 200;

/** The household's verdict on one sighting of a face. */
export interface Correction {
  sightingId: string;
  verdict: 'is' | 'is-not';
  /** The sighting's descriptor, as templates are stored. */
  descriptor: string;
}

export interface SealedPerson {
  v: 1;
  name: string;
  /** From photos: little-endian float32 bytes, base64. */
  templates: string[];
  /** The household's corrections, one per sighting (a later one for the same sighting replaces it). */
  corrections?: Correction[];
}

/** A template or descriptor as stored: its float32 bytes, base64. */
export const toB64 = (t: Float32Array): string => Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64');

export function fromB64(s: string): Float32Array {
  const bytes = Buffer.from(s, 'base64');
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** The name trimmed. @throws CamveilError `CAMVEIL_E_USAGE` when it is empty or longer than MAX_NAME_LENGTH. */
export function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === '' || [...trimmed].length > MAX_NAME_LENGTH) {
    throw new CamveilError('CAMVEIL_E_USAGE', `a name must be 1–${MAX_NAME_LENGTH} characters`, { where: 'name' });
  }
  return trimmed;
}

/** Templates (photos, then "is" corrections) and negatives as the matcher needs them. */
export function matcherViewOf(sealed: SealedPerson): { templates: Float32Array[]; negatives: Float32Array[] } {
  const corrections = sealed.corrections ?? [];
  return {
    templates: [...sealed.templates, ...corrections.filter((c) => c.verdict === 'is').map((c) => c.descriptor)].map(fromB64),
    negatives: corrections.filter((c) => c.verdict === 'is-not').map((c) => fromB64(c.descriptor)),
  };
}

/**
 * `sealed` with `correction` in place of any earlier one for the same sighting. At MAX_CORRECTIONS the
 * household's own verdict is refused (CAMVEIL_E_USAGE); one the hub infers drops the oldest instead.
 */
export function withCorrection(sealed: SealedPerson, correction: Correction, whenFull: 'refuse' | 'drop-oldest'): SealedPerson {
  let others = (sealed.corrections ?? []).filter((c) => c.sightingId !== correction.sightingId);
  if (others.length >= MAX_CORRECTIONS) {
    if (whenFull === 'refuse') throw new CamveilError('CAMVEIL_E_USAGE', `at most ${MAX_CORRECTIONS} corrections per person`, { where: 'personId' });
    others = others.slice(-(MAX_CORRECTIONS - 1));
  }
  return { ...sealed, corrections: [...others, correction] };
}
