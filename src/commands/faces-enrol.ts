import { EnrolmentStore } from '../analysis/faces/enrolment.js';
import { FaceEngine } from '../analysis/faces/face-engine.js';
import { CamveilError, exitCodeFor } from '../errors.js';
import { KeyRegistry } from '../control/key-registry.js';
import { LOCAL_OPERATOR, type VerifiedGuardianAttestation } from '../policy/consent-ledger.js';
import { openHubContext, type HubContext } from './hub-context.js';
import type { CommandIO } from './io.js';

export interface FacesEnrolOptions {
  /** Config file path. */
  config: string;
  name: string;
  photos: string[];
  minor?: boolean;
  /**
   * A minor's guardian at the hub's console: a paired app key id of this hub (or `local-operator`, the
   * operator themself) and their written statement (time = now). The operator vouches for it; over MQTT the
   * guardian signs instead (control/guardian-attestation.ts).
   */
  guardianKey?: string;
  guardianStatement?: string;
  /** Keep the photos, sealed to the hub key (default: not kept). */
  keepPhotos?: boolean;
  json?: boolean;
  /** A loaded engine (tests); otherwise one is loaded for the call and unloaded after. */
  engine?: FaceEngine;
}

export interface FacesListOptions {
  config: string;
  json?: boolean;
}

export interface FacesDeleteOptions {
  config: string;
  /** One person (`person_…`); or `all: true` for everyone. */
  personId?: string;
  all?: boolean;
}

/** Exit code: 2 for what the operator can fix in the input (photo, usage), else the catalogue's. */
function report(io: CommandIO, error: unknown): number {
  if (!(error instanceof CamveilError)) throw error;
  io.stderr(`${error.code}: ${error.message}`);
  return error.code === 'CAMVEIL_E_IMAGE_INVALID' || error.code === 'CAMVEIL_E_NO_FACE' || error.code === 'CAMVEIL_E_SEVERAL_FACES' ? 2 : exitCodeFor(error);
}

async function withStore<T>(configFile: string, use: (store: EnrolmentStore, ctx: HubContext) => Promise<T>): Promise<T> {
  const ctx = await openHubContext(configFile);
  try {
    return await use(ctx.people, ctx);
  } finally {
    ctx.close();
  }
}

/**
 * `camveil faces enrol --name NAME [--minor --guardian-key KEYID --guardian-statement TEXT] PHOTO…`:
 * enrols one person from photos that each show exactly one usable face. Prints the new person id (the
 * name is echoed to the operator only; it is stored sealed to the hub and never logged or audited).
 *
 * @returns 0; 2 when a photo is unreadable or does not hold exactly one usable face; 1 otherwise
 * (e.g. `CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED`).
 */
export async function runFacesEnrol(opts: FacesEnrolOptions, io: CommandIO): Promise<number> {
  try {
    const minor = opts.minor === true;
    const guardian: VerifiedGuardianAttestation | undefined =
      minor && opts.guardianKey !== undefined && opts.guardianStatement !== undefined
        ? { guardianKeyId: opts.guardianKey, statement: opts.guardianStatement, at: new Date().toISOString(), verifiedBy: 'console' }
        : undefined;
    const person = await withStore(opts.config, async (store, ctx) => {
      // The console may vouch for a guardian, but only one this hub knows: a paired, unrevoked key, or itself.
      if (guardian !== undefined && guardian.guardianKeyId !== LOCAL_OPERATOR) {
        const key = new KeyRegistry(ctx.db).get(guardian.guardianKeyId);
        if (key === undefined || key.revokedAt !== undefined) {
          throw new CamveilError('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED', `--guardian-key must be a paired key of this hub (camveil pair) or ${LOCAL_OPERATOR}`, { where: 'faces enrol' });
        }
      }
      const decision = ctx.gate.mayEnrolFaces();
      if (!decision.allowed) {
        throw new CamveilError('CAMVEIL_E_CONSENT_REQUIRED', `face enrolment is not allowed now: ${decision.reason}`, { where: 'faces enrol' });
      }
      return FaceEngine.using(
        (engine) =>
          store.enrol(engine, {
            name: opts.name,
            photos: opts.photos,
            minor,
            keepPhotos: opts.keepPhotos === true,
            ...(guardian === undefined ? {} : { guardianAttestation: guardian }),
          }),
        opts.engine,
      );
    });
    if (opts.json === true) io.stdout(JSON.stringify({ personId: person.personId, minor: person.minor, templates: person.templates, photosKept: person.photosKept }));
    else io.stdout(`enrolled ${person.personId} (${person.templates} template(s)${person.minor ? ', minor' : ''}${person.photosKept > 0 ? `, ${person.photosKept} photo(s) kept sealed` : ''})`);
    return 0;
  } catch (error) {
    return report(io, error);
  }
}

/** `camveil faces list [--json]`: enrolled people with their names (decrypted on the hub), minor flag and template count. */
export async function runFacesList(opts: FacesListOptions, io: CommandIO): Promise<number> {
  try {
    const people = await withStore(opts.config, (store) => store.list());
    if (opts.json === true) {
      io.stdout(JSON.stringify({ people }));
    } else {
      io.stdout(`${people.length} enrolled`);
      for (const p of people) {
        const extra = `${p.negatives > 0 ? `, ${p.negatives} negative(s)` : ''}${p.photosKept > 0 ? `, ${p.photosKept} photo(s) kept` : ''}`;
        io.stdout(`  ${p.personId}  ${p.name}${p.minor ? ' (minor)' : ''}  ${p.templates} template(s)${extra}, since ${p.enrolledAt}`);
      }
    }
    return 0;
  } catch (error) {
    return report(io, error);
  }
}

/** `camveil faces delete PERSON_ID | --all`: removes templates at once (audited as unenrolled). @returns 0; 1 for an unknown id. */
export async function runFacesDelete(opts: FacesDeleteOptions, io: CommandIO): Promise<number> {
  try {
    if ((opts.personId === undefined) === (opts.all !== true)) throw new CamveilError('CAMVEIL_E_USAGE', 'give one person id, or --all');
    const removed = await withStore(opts.config, (store) => {
      if (opts.all === true) return Promise.resolve(store.deleteAll());
      store.delete(opts.personId!);
      return Promise.resolve(1);
    });
    io.stdout(`deleted ${removed} person(s) and their face templates`);
    return 0;
  } catch (error) {
    return report(io, error);
  }
}

/** `camveil faces rename --person ID --name NAME`: corrects a person's name (stored sealed to the hub key). @returns 0; 1 for an unknown id. */
export async function runFacesRename(opts: { config: string; personId: string; name: string }, io: CommandIO): Promise<number> {
  try {
    await withStore(opts.config, (store) => store.rename(opts.personId, opts.name));
    io.stdout(`renamed ${opts.personId}`);
    return 0;
  } catch (error) {
    return report(io, error);
  }
}

/** Face work that widens what the hub keeps (photos, corrections) needs what enrolment needs. */
function requireEnrolment(ctx: HubContext, where: string): void {
  const decision = ctx.gate.mayEnrolFaces();
  if (!decision.allowed) throw new CamveilError('CAMVEIL_E_CONSENT_REQUIRED', `face enrolment is not allowed now: ${decision.reason}`, { where });
}

/**
 * `camveil faces add-photos PERSON PHOTO… [--keep-photos]`: more templates for an enrolled person,
 * each photo with exactly one usable face, all or none.
 *
 * @returns 0; 2 when a photo is unreadable or does not hold exactly one usable face; 1 otherwise.
 */
export async function runFacesAddPhotos(opts: { config: string; personId: string; photos: string[]; keepPhotos?: boolean; json?: boolean; engine?: FaceEngine }, io: CommandIO): Promise<number> {
  try {
    const person = await withStore(opts.config, async (store, ctx) => {
      requireEnrolment(ctx, 'faces add-photos');
      if (!store.ids().includes(opts.personId)) throw new CamveilError('CAMVEIL_E_PERSON_NOT_FOUND', `no enrolled person ${opts.personId}`, { where: 'personId' });
      return FaceEngine.using((engine) => store.addPhotos(engine, opts.personId, opts.photos, { keepPhotos: opts.keepPhotos === true }), opts.engine);
    });
    if (opts.json === true) io.stdout(JSON.stringify({ personId: person.personId, templates: person.templates, photosKept: person.photosKept }));
    else io.stdout(`${person.personId}: ${person.templates} template(s) now${person.photosKept > 0 ? `, ${person.photosKept} photo(s) kept sealed` : ''}`);
    return 0;
  } catch (error) {
    return report(io, error);
  }
}

/**
 * `camveil faces correct SIGHTING --is PERSON | --not PERSON`: "this is X" adds the sighting's face to X's
 * templates; "this is not X" keeps it as a negative so that face is not taken for X again.
 *
 * @returns 0; 1 for an unknown sighting or person, or when enrolment is not allowed.
 */
export async function runFacesCorrect(opts: { config: string; sightingId: string; is?: string; not?: string; json?: boolean }, io: CommandIO): Promise<number> {
  try {
    if ((opts.is === undefined) === (opts.not === undefined)) throw new CamveilError('CAMVEIL_E_USAGE', 'give one of --is PERSON or --not PERSON');
    const verdict = opts.is === undefined ? 'is-not' : 'is';
    const personId = (opts.is ?? opts.not)!;
    const person = await withStore(opts.config, (store, ctx) => {
      requireEnrolment(ctx, 'faces correct');
      return store.correct(opts.sightingId, personId, verdict);
    });
    if (opts.json === true) io.stdout(JSON.stringify({ sightingId: opts.sightingId, personId, verdict, templates: person.templates, negatives: person.negatives }));
    else io.stdout(`${opts.sightingId} ${verdict === 'is' ? 'is' : 'is not'} ${personId}: ${person.templates} template(s), ${person.negatives} negative(s)`);
    return 0;
  } catch (error) {
    return report(io, error);
  }
}

/** `camveil faces sightings [--limit N] [--json]`: recent confirmed sightings, newest first, without descriptors. */
export async function runFacesSightings(opts: { config: string; limit?: number; json?: boolean }, io: CommandIO): Promise<number> {
  try {
    const sightings = await withStore(opts.config, (store) => store.sightings.list(Math.max(1, Math.floor(opts.limit ?? 100))));
    if (opts.json === true) {
      io.stdout(JSON.stringify({ sightings }));
    } else {
      io.stdout(`${sightings.length} sighting(s)`);
      for (const s of sightings) {
        io.stdout(`  ${s.sightingId}  ${new Date(s.at).toISOString()}  ${s.cameraId}  ${s.eventId ?? '-'}  ${s.label === 'known' ? s.personId : 'unknown'}`);
      }
    }
    return 0;
  } catch (error) {
    return report(io, error);
  }
}
