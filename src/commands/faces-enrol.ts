import { EnrolmentStore } from '../analysis/faces/enrolment.js';
import { FaceEngine } from '../analysis/faces/face-engine.js';
import { CamveilError, exitCodeFor } from '../errors.js';
import type { GuardianAttestation } from '../policy/consent-ledger.js';
import { openHubContext, type HubContext } from './hub-context.js';
import type { CommandIO } from './io.js';

export interface FacesEnrolOptions {
  /** Config file path. */
  config: string;
  name: string;
  photos: string[];
  minor?: boolean;
  /** A minor's guardian: their paired app key id and their written statement (time = now). */
  guardianKey?: string;
  guardianStatement?: string;
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
    const guardian: GuardianAttestation | undefined =
      minor && opts.guardianKey !== undefined && opts.guardianStatement !== undefined
        ? { guardianKeyId: opts.guardianKey, statement: opts.guardianStatement, at: new Date().toISOString() }
        : undefined;
    const person = await withStore(opts.config, async (store, ctx) => {
      const decision = ctx.gate.mayEnrolFaces();
      if (!decision.allowed) {
        throw new CamveilError('CAMVEIL_E_CONSENT_REQUIRED', `face enrolment is not allowed now: ${decision.reason}`, { where: 'faces enrol' });
      }
      const engine = opts.engine ?? new FaceEngine();
      try {
        if (opts.engine === undefined) await engine.load();
        return await store.enroll(engine, { name: opts.name, photos: opts.photos, minor, ...(guardian === undefined ? {} : { guardianAttestation: guardian }) });
      } finally {
        if (opts.engine === undefined) engine.unload();
      }
    });
    if (opts.json === true) io.stdout(JSON.stringify({ personId: person.personId, minor: person.minor, templates: person.templates }));
    else io.stdout(`enrolled ${person.personId} (${person.templates} template(s)${person.minor ? ', minor' : ''})`);
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
      for (const p of people) io.stdout(`  ${p.personId}  ${p.name}${p.minor ? ' (minor)' : ''}  ${p.templates} template(s), since ${p.enrolledAt}`);
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
