import { createHash, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AuditLog } from '../../audit/audit-log.js';
import { base32 } from '../../crypto/base32.js';
import { decryptToBuffer, encryptToBuffer } from '../../crypto/age-stream.js';
import { CamveilError } from '../../errors.js';
import { LOCAL_OPERATOR, requireGuardianAttestation, type ConsentLedger } from '../../policy/consent-ledger.js';
import { UNSIGNED_ACTOR } from '../../policy/withdrawal.js';
import { migrate } from '../../store/database.js';
import type { FaceEngine } from './face-engine.js';
import { MAX_PHOTO_TEMPLATES, photoBytes, templateOf, type ChangeOrigin, type EnrolRequest, type Photo } from './enrolment-request.js';
import { KeptPhotos } from './kept-photos.js';
import type { EnrolledPerson } from './matcher.js';
import { checkName, matcherViewOf, toB64, withCorrection, type SealedPerson } from './sealed-person.js';
import { SightingStore } from './sightings.js';

/**
 * Enrolled people: one row each. In clear only a random `person_…` id, the minor flag, the template and
 * negative counts and the enrolment time; the name, the 128-D templates and the corrections are one age
 * file sealed to the hub's own recipient (only the hub identity opens it). Enrolment photos are read,
 * described and dropped, unless the household asks to keep them (kept-photos.ts).
 */
const STEPS: readonly string[] = [
  `CREATE TABLE faces_people (
     person_id   TEXT PRIMARY KEY CHECK (person_id GLOB 'person_*'),
     minor       INTEGER NOT NULL CHECK (minor IN (0, 1)),
     templates   INTEGER NOT NULL CHECK (templates > 0),
     enrolled_at TEXT NOT NULL,
     sealed      BLOB NOT NULL
   ) STRICT;
   CREATE TABLE faces_revision (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL) STRICT;
   INSERT INTO faces_revision (id, revision) VALUES (1, 0);`,
  `ALTER TABLE faces_people ADD COLUMN negatives INTEGER NOT NULL DEFAULT 0 CHECK (negatives >= 0);`,
];

export interface EnrolmentStoreOptions {
  db: Database.Database;
  /** The hub's own age identity and recipient (loadOrCreateHubKeys). */
  hub: { identity: string; recipient: string };
  audit: AuditLog;
  /** The policy version in force, recorded with every enrolment change. */
  policyVersion: string;
  /** When given, enrolments and removals are recorded in the consent ledger too (with the guardian attestation). */
  ledger?: ConsentLedger;
  /** Who asked (a paired key id); default the local operator. */
  actor?: string;
  now?: () => Date;
}

/** A person as the household sees them (names decrypted). Not for logs. */
export interface PersonSummary {
  personId: string;
  name: string;
  minor: boolean;
  /** Templates in use: one per photo, and one per "this is X" correction. */
  templates: number;
  /** Faces kept as "this is not X". */
  negatives: number;
  /** Photos kept (sealed) at the household's request. */
  photosKept: number;
  enrolledAt: string;
}

interface Row {
  person_id: string;
  minor: number;
  templates: number;
  negatives: number;
  enrolled_at: string;
  sealed: Buffer;
}

const COLUMNS = 'person_id, minor, templates, negatives, enrolled_at, sealed';

/** The store of enrolled people and their face templates, in the hub's database. */
export class EnrolmentStore {
  readonly #o: EnrolmentStoreOptions;
  readonly #db: Database.Database;
  readonly #photos: KeptPhotos;
  /** Recent confirmed sightings, which corrections refer to; the face stage records them here. */
  readonly sightings: SightingStore;

  constructor(options: EnrolmentStoreOptions) {
    this.#o = options;
    this.#db = options.db;
    migrate(this.#db, 'faces', STEPS);
    // Deleted rows are overwritten, not left in free pages: "templates gone at once" includes the file.
    this.#db.pragma('secure_delete = ON');
    this.#photos = new KeptPhotos(this.#db, options.hub.recipient);
    this.sightings = new SightingStore({ db: this.#db, hub: options.hub, ...(options.now === undefined ? {} : { now: () => options.now!().getTime() }) });
  }

  #ctx(words: string, origin?: ChangeOrigin): { actor: string; policyVersion: string; requestDigest: string } {
    return {
      actor: origin?.keyId ?? this.#o.actor ?? LOCAL_OPERATOR,
      policyVersion: this.#o.policyVersion,
      requestDigest: origin?.requestDigest ?? createHash('sha256').update(words).digest('hex'),
    };
  }

  #bump(): void {
    this.#db.prepare('UPDATE faces_revision SET revision = revision + 1 WHERE id = 1').run();
  }

  async #seal(content: SealedPerson): Promise<Buffer> {
    return encryptToBuffer([this.#o.hub.recipient], Buffer.from(JSON.stringify(content), 'utf8'));
  }

  async #open(row: Row): Promise<SealedPerson> {
    return JSON.parse((await decryptToBuffer(this.#o.hub.identity, row.sealed)).toString('utf8')) as SealedPerson;
  }

  /**
   * Enrols one person from photos: checks the guardian attestation of a minor first (before any photo is
   * read), then requires exactly one usable face per photo, seals name and templates to the hub, and
   * records `consent.changed` (enrolled) in the audit log and, with a ledger, an enrol record.
   *
   * @throws CamveilError `CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED`, `CAMVEIL_E_NO_FACE`, `CAMVEIL_E_SEVERAL_FACES`,
   * `CAMVEIL_E_IMAGE_INVALID` (naming the photo), `CAMVEIL_E_USAGE` (no photo, bad name). Nothing is stored then.
   */
  async enrol(engine: FaceEngine, request: EnrolRequest): Promise<PersonSummary> {
    requireGuardianAttestation({ minor: request.minor }, request.guardianAttestation);
    const verifiedBy = request.guardianAttestation?.verifiedBy;
    if (request.minor && verifiedBy !== 'paired-key' && verifiedBy !== 'console') {
      throw new CamveilError('CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED', "enrolling a minor needs a guardian's attestation signed by a paired key (or made at the hub's console)", { where: 'enrolment' });
    }
    const name = checkName(request.name);
    if (request.photos.length === 0) throw new CamveilError('CAMVEIL_E_USAGE', 'enrolment needs at least one photo', { where: 'photos' });
    if (request.photos.length > MAX_PHOTO_TEMPLATES) throw new CamveilError('CAMVEIL_E_USAGE', `at most ${MAX_PHOTO_TEMPLATES} photos per person`, { where: 'photos' });
    const templates: Float32Array[] = [];
    for (const [i, file] of request.photos.entries()) templates.push(await templateOf(engine, file, i));
    const kept = request.keepPhotos === true ? await this.#photos.seal(await photoBytes(request.photos)) : [];
    const personId = `person_${base32(randomBytes(10))}`;
    const sealed = await this.#seal({ v: 1, name, templates: templates.map(toB64) });
    const enrolledAt = (this.#o.now?.() ?? new Date()).toISOString();
    const minor = request.minor;
    this.#db.transaction(() => {
      this.#db
        .prepare('INSERT INTO faces_people (person_id, minor, templates, enrolled_at, sealed) VALUES (?, ?, ?, ?, ?)')
        .run(personId, minor ? 1 : 0, templates.length, enrolledAt, sealed);
      this.#photos.insert(personId, kept, enrolledAt);
      this.#bump();
      // The ledger keeps the attestation's fields; how it was verified is the actor's and the record's business.
      const guardian = request.guardianAttestation === undefined ? undefined : { guardianKeyId: request.guardianAttestation.guardianKeyId, statement: request.guardianAttestation.statement, at: request.guardianAttestation.at };
      const ctx = this.#ctx(`faces enrol ${personId}`, request.origin);
      const record = this.#o.ledger?.recordEnrolment({ subject: personId, minor }, ctx, guardian);
      this.#o.audit.append('consent.changed', {
        state: 'enrolled',
        feature: 'faceRecognition',
        policyVersion: this.#o.policyVersion,
        subject: personId,
        minor,
        ...(record === undefined ? {} : { ledgerSeq: record.seq }),
        ...(ctx.actor === LOCAL_OPERATOR ? {} : { keyId: ctx.actor }),
        ...(request.origin?.requestDigest === undefined ? {} : { requestDigest: request.origin.requestDigest }),
      });
    })();
    return { personId, name, minor, templates: templates.length, negatives: 0, photosKept: kept.length, enrolledAt };
  }

  /**
   * Adds templates to an enrolled person from more photos, with the rule of enrol: exactly one usable face
   * per photo, and all photos or none. With `keepPhotos` the photos are kept, sealed to the hub.
   * Audited as `face.templates` (photos-added).
   *
   * @throws CamveilError `CAMVEIL_E_PERSON_NOT_FOUND`, `CAMVEIL_E_NO_FACE`, `CAMVEIL_E_SEVERAL_FACES`,
   * `CAMVEIL_E_IMAGE_INVALID`, `CAMVEIL_E_USAGE` (no photo, too many). Nothing is stored then.
   */
  async addPhotos(engine: FaceEngine, personId: string, photos: readonly Photo[], options: { keepPhotos?: boolean; origin?: ChangeOrigin } = {}): Promise<PersonSummary> {
    this.#row(personId);
    if (photos.length === 0) throw new CamveilError('CAMVEIL_E_USAGE', 'give at least one photo', { where: 'photos' });
    const templates: Float32Array[] = [];
    for (const [i, file] of photos.entries()) templates.push(await templateOf(engine, file, i));
    const kept = options.keepPhotos === true ? await this.#photos.seal(await photoBytes(photos)) : [];
    const at = (this.#o.now?.() ?? new Date()).toISOString();
    await this.#update(personId, (sealed) => {
      if (sealed.templates.length + templates.length > MAX_PHOTO_TEMPLATES) {
        throw new CamveilError('CAMVEIL_E_USAGE', `at most ${MAX_PHOTO_TEMPLATES} photos per person (${sealed.templates.length} already)`, { where: 'photos' });
      }
      return { ...sealed, templates: [...sealed.templates, ...templates.map(toB64)] };
    }, () => {
      this.#photos.insert(personId, kept, at);
      this.#auditChange(personId, { change: 'photos-added', count: templates.length, ...(kept.length > 0 ? { kept: kept.length } : {}) }, options.origin);
    });
    return this.#summaryOf(this.#row(personId));
  }

  /**
   * Applies the household's verdict on a sighting: `is` adds the sighting's face to the person's templates
   * (and, when the hub had reported the sighting as someone else, keeps it as a negative for them), `is-not`
   * keeps it as a negative for the person (the matcher then refuses that stranger for them). A
   * later verdict on the same sighting for the same person replaces the earlier one. Audited as
   * `face.templates` with the person's and the sighting's ids, no name.
   *
   * @throws CamveilError `CAMVEIL_E_SIGHTING_NOT_FOUND`, `CAMVEIL_E_PERSON_NOT_FOUND`, `CAMVEIL_E_USAGE`
   * (too many corrections). Nothing changes then.
   */
  async correct(sightingId: string, personId: string, verdict: 'is' | 'is-not', origin?: ChangeOrigin): Promise<PersonSummary> {
    this.#row(personId);
    const sighting = await this.sightings.get(sightingId);
    const descriptor = toB64(sighting.descriptor);
    await this.#update(personId, (sealed) => withCorrection(sealed, { sightingId, verdict, descriptor }, 'refuse'), () =>
      this.#auditChange(personId, { change: verdict, sighting: sightingId }, origin),
    );
    // "This is X" on a face the hub reported as Y says Y was wrong too: the face becomes a negative for Y.
    const wronglyMatched = sighting.personId;
    if (verdict === 'is' && wronglyMatched !== undefined && wronglyMatched !== personId && this.ids().includes(wronglyMatched)) {
      await this.#update(wronglyMatched, (sealed) => withCorrection(sealed, { sightingId, verdict: 'is-not', descriptor }, 'drop-oldest'), () =>
        this.#auditChange(wronglyMatched, { change: 'is-not', sighting: sightingId }, origin),
      );
    }
    return this.#summaryOf(this.#row(personId));
  }

  /**
   * Read, change, seal and write one person's sealed file; the write happens only if nobody changed the row
   * meanwhile (another command, the CLI in another process), else it starts again. `also` runs in the same
   * transaction as the write.
   */
  async #update(personId: string, change: (sealed: SealedPerson) => SealedPerson, also: () => void): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const row = this.#row(personId);
      const next = change(await this.#open(row));
      const resealed = await this.#seal(next);
      const view = matcherViewOf(next);
      const written = this.#db.transaction(() => {
        const r = this.#db
          .prepare('UPDATE faces_people SET sealed = ?, templates = ?, negatives = ? WHERE person_id = ? AND sealed = ?')
          .run(resealed, view.templates.length, view.negatives.length, personId, row.sealed);
        if (r.changes === 0) return false;
        also();
        this.#bump();
        return true;
      })();
      if (written) return;
    }
    throw new CamveilError('CAMVEIL_E_INTERNAL', 'the person changed repeatedly while being updated; try again', { where: 'personId' });
  }

  #auditChange(personId: string, details: { change: 'photos-added' | 'is' | 'is-not'; count?: number; kept?: number; sighting?: string }, origin?: ChangeOrigin): void {
    const keyId = origin?.keyId ?? (this.#o.actor === undefined || this.#o.actor === LOCAL_OPERATOR ? undefined : this.#o.actor);
    this.#o.audit.append('face.templates', {
      subject: personId,
      ...details,
      policyVersion: this.#o.policyVersion,
      ...(keyId === undefined ? {} : { keyId }),
      ...(origin?.requestDigest === undefined ? {} : { requestDigest: origin.requestDigest }),
    });
  }

  /** Everyone enrolled, names decrypted with the hub identity, oldest first. */
  async list(): Promise<PersonSummary[]> {
    const out: PersonSummary[] = [];
    for (const row of this.#rows()) out.push(await this.#summaryOf(row));
    return out;
  }

  async #summaryOf(row: Row): Promise<PersonSummary> {
    return {
      personId: row.person_id,
      name: (await this.#open(row)).name,
      minor: row.minor === 1,
      templates: row.templates,
      negatives: row.negatives,
      photosKept: this.#photos.countFor(row.person_id),
      enrolledAt: row.enrolled_at,
    };
  }

  /** The decrypted templates of everyone, for the matcher (RAM only). */
  async load(): Promise<EnrolledPerson[]> {
    const out: EnrolledPerson[] = [];
    for (const row of this.#rows()) out.push({ personId: row.person_id, ...matcherViewOf(await this.#open(row)) });
    return out;
  }

  /** Moves on every enrolment, rename, correction, added photo and deletion: the face stage reloads templates when it changes. */
  revision(): number {
    return this.#db.prepare<[], { revision: number }>('SELECT revision FROM faces_revision WHERE id = 1').get()?.revision ?? 0;
  }

  count(): number {
    return this.#db.prepare<[], { n: number }>('SELECT count(*) AS n FROM faces_people').get()?.n ?? 0;
  }

  /** @throws CamveilError `CAMVEIL_E_PERSON_NOT_FOUND`, `CAMVEIL_E_USAGE` for a bad name. */
  async rename(personId: string, name: string): Promise<void> {
    const row = this.#row(personId);
    const sealed = await this.#open(row);
    const resealed = await this.#seal({ ...sealed, name: checkName(name) });
    this.#db.transaction(() => {
      this.#db.prepare('UPDATE faces_people SET sealed = ? WHERE person_id = ?').run(resealed, personId);
      this.#bump();
    })();
  }

  /**
   * Removes a person and their templates at once (audited `unenrolled`; `origin` names who asked, default the
   * console). @throws CamveilError `CAMVEIL_E_PERSON_NOT_FOUND`.
   */
  delete(personId: string, origin?: ChangeOrigin): void {
    this.#row(personId);
    this.#remove([personId], origin);
  }

  /**
   * Removes everyone and every sighting, known or not (`faces delete --all`, data deletion). Each person is
   * audited `unenrolled`. Returns how many people were removed.
   */
  deleteAll(origin?: ChangeOrigin): number {
    const ids = this.ids();
    this.#remove(ids, origin);
    this.sightings.deleteAll();
    return ids.length;
  }

  /**
   * Removes these people (ids not enrolled are ignored); returns how many were removed. `origin` names who
   * asked (default the console); `reason` is audited with each unenrolment.
   */
  deleteMany(ids: readonly string[], origin?: ChangeOrigin, reason?: 'held-retention'): number {
    const known = new Set(this.ids());
    const present = [...new Set(ids)].filter((id) => known.has(id));
    this.#remove(present, origin, reason);
    return present.length;
  }

  /** The ids of everyone enrolled (no decryption). */
  ids(): string[] {
    return this.#db.prepare<[], { person_id: string }>('SELECT person_id FROM faces_people').all().map((r) => r.person_id);
  }

  #remove(ids: readonly string[], origin?: ChangeOrigin, reason?: string): void {
    if (ids.length === 0) return;
    this.#db.transaction(() => {
      const del = this.#db.prepare('DELETE FROM faces_people WHERE person_id = ?');
      for (const id of ids) {
        del.run(id);
        this.#photos.deleteFor(id);
        this.sightings.deleteForPeople([id]);
        const ctx = this.#ctx(`faces delete ${id}`, origin);
        const record = this.#o.ledger?.recordUnenrolment(id, ctx);
        this.#o.audit.append('consent.changed', {
          state: 'unenrolled',
          feature: 'faceRecognition',
          policyVersion: this.#o.policyVersion,
          subject: id,
          ...(record === undefined ? {} : { ledgerSeq: record.seq }),
          // The unsigned marker is not a key: the ledger record (ledgerSeq) names it, the audit gives no keyId.
          ...(ctx.actor === LOCAL_OPERATOR || ctx.actor === UNSIGNED_ACTOR ? {} : { keyId: ctx.actor }),
          ...(origin?.requestDigest === undefined ? {} : { requestDigest: origin.requestDigest }),
          ...(reason === undefined ? {} : { reason }),
        });
      }
      this.#bump();
    })();
    // The sealed rows also lived in the WAL; fold it into the (secure-deleted) file and truncate it.
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // another connection holds a read lock: the WAL is reset at its next checkpoint
    }
  }

  #rows(): Row[] {
    return this.#db.prepare<[], Row>(`SELECT ${COLUMNS} FROM faces_people ORDER BY enrolled_at, person_id`).all();
  }

  #row(personId: string): Row {
    const row = this.#db.prepare<[string], Row>(`SELECT ${COLUMNS} FROM faces_people WHERE person_id = ?`).get(personId);
    if (row === undefined) throw new CamveilError('CAMVEIL_E_PERSON_NOT_FOUND', `no enrolled person ${personId}`, { where: 'personId' });
    return row;
  }
}
