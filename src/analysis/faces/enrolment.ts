import { createHash, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AuditLog } from '../../audit/audit-log.js';
import { base32 } from '../../crypto/base32.js';
import { decryptToBuffer, encryptToBuffer } from '../../crypto/age-stream.js';
import { CamveilError } from '../../errors.js';
import { LOCAL_OPERATOR, requireGuardianAttestation, type ConsentLedger, type GuardianAttestation } from '../../policy/consent-ledger.js';
import { migrate } from '../../store/database.js';
import type { FaceEngine } from './face-engine.js';
import { readImageFile, type FaceImage } from './image-input.js';
import type { EnrolledPerson } from './matcher.js';

/**
 * Enrolled people: one row each. In clear only a random `person_…` id, the minor flag, the template count
 * and the enrolment time; the name and the 128-D templates are one age file sealed to the hub's own
 * recipient (only the hub identity opens it). Enrolment photos are read, described and dropped, never kept.
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
];

/** Longest name accepted, in characters. */
export const MAX_NAME_LENGTH = 100;

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

export interface EnrolRequest {
  name: string;
  /**
   * Each showing the person's face and no other usable face: image files, or images already in memory
   * (photos sent sealed by the app, a crop made on the hub) — those never touch the disk.
   */
  photos: ReadonlyArray<string | { label: string; image: FaceImage }>;
  minor: boolean;
  guardianAttestation?: GuardianAttestation;
}

/** A person as the household sees them (names decrypted). Not for logs. */
export interface PersonSummary {
  personId: string;
  name: string;
  minor: boolean;
  templates: number;
  enrolledAt: string;
}

interface Sealed {
  v: 1;
  name: string;
  /** Little-endian float32 bytes, base64. */
  templates: string[];
}

interface Row {
  person_id: string;
  minor: number;
  templates: number;
  enrolled_at: string;
  sealed: Buffer;
}

const toB64 = (t: Float32Array): string => Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64');
function fromB64(s: string): Float32Array {
  const bytes = Buffer.from(s, 'base64');
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === '' || [...trimmed].length > MAX_NAME_LENGTH) {
    throw new CamveilError('CAMVEIL_E_USAGE', `a name must be 1–${MAX_NAME_LENGTH} characters`, { where: 'name' });
  }
  return trimmed;
}

/**
 * The template of the one usable face in a photo. Refuses, naming the photo (by its position, and its
 * path for the local operator), when it holds no face, only unusable ones, or several usable ones.
 */
async function templateOf(engine: FaceEngine, photo: string | { label: string; image: FaceImage }, index: number): Promise<Float32Array> {
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

/** The store of enrolled people and their face templates, in the hub's database. */
export class EnrolmentStore {
  readonly #o: EnrolmentStoreOptions;
  readonly #db: Database.Database;

  constructor(options: EnrolmentStoreOptions) {
    this.#o = options;
    this.#db = options.db;
    migrate(this.#db, 'faces', STEPS);
    // Deleted rows are overwritten, not left in free pages: "templates gone at once" includes the file.
    this.#db.pragma('secure_delete = ON');
  }

  #ctx(words: string): { actor: string; policyVersion: string; requestDigest: string } {
    return { actor: this.#o.actor ?? LOCAL_OPERATOR, policyVersion: this.#o.policyVersion, requestDigest: createHash('sha256').update(words).digest('hex') };
  }

  #bump(): void {
    this.#db.prepare('UPDATE faces_revision SET revision = revision + 1 WHERE id = 1').run();
  }

  async #seal(content: Sealed): Promise<Buffer> {
    return encryptToBuffer([this.#o.hub.recipient], Buffer.from(JSON.stringify(content), 'utf8'));
  }

  async #open(row: Row): Promise<Sealed> {
    return JSON.parse((await decryptToBuffer(this.#o.hub.identity, row.sealed)).toString('utf8')) as Sealed;
  }

  /**
   * Enrols one person from photos: checks the guardian attestation of a minor first (before any photo is
   * read), then requires exactly one usable face per photo, seals name and templates to the hub, and
   * records `consent.changed` (enrolled) in the audit log and, with a ledger, an enrol record.
   *
   * @throws CamveilError `CAMVEIL_E_GUARDIAN_CONSENT_REQUIRED`, `CAMVEIL_E_NO_FACE`, `CAMVEIL_E_SEVERAL_FACES`,
   * `CAMVEIL_E_IMAGE_INVALID` (naming the photo), `CAMVEIL_E_USAGE` (no photo, bad name). Nothing is stored then.
   */
  async enroll(engine: FaceEngine, request: EnrolRequest): Promise<PersonSummary> {
    requireGuardianAttestation({ minor: request.minor }, request.guardianAttestation);
    const name = checkName(request.name);
    if (request.photos.length === 0) throw new CamveilError('CAMVEIL_E_USAGE', 'enrolment needs at least one photo', { where: 'photos' });
    const templates: Float32Array[] = [];
    for (const [i, file] of request.photos.entries()) templates.push(await templateOf(engine, file, i));
    const personId = `person_${base32(randomBytes(10))}`;
    const sealed = await this.#seal({ v: 1, name, templates: templates.map(toB64) });
    const enrolledAt = (this.#o.now?.() ?? new Date()).toISOString();
    const minor = request.minor;
    this.#db.transaction(() => {
      this.#db
        .prepare('INSERT INTO faces_people (person_id, minor, templates, enrolled_at, sealed) VALUES (?, ?, ?, ?, ?)')
        .run(personId, minor ? 1 : 0, templates.length, enrolledAt, sealed);
      this.#bump();
      const record = this.#o.ledger?.recordEnrolment({ subject: personId, minor }, this.#ctx(`faces enrol ${personId}`), request.guardianAttestation);
      this.#o.audit.append('consent.changed', {
        state: 'enrolled',
        feature: 'faceRecognition',
        policyVersion: this.#o.policyVersion,
        subject: personId,
        minor,
        ...(record === undefined ? {} : { ledgerSeq: record.seq }),
      });
    })();
    return { personId, name, minor, templates: templates.length, enrolledAt };
  }

  /** Everyone enrolled, names decrypted with the hub identity, oldest first. */
  async list(): Promise<PersonSummary[]> {
    const out: PersonSummary[] = [];
    for (const row of this.#rows()) {
      const sealed = await this.#open(row);
      out.push({ personId: row.person_id, name: sealed.name, minor: row.minor === 1, templates: row.templates, enrolledAt: row.enrolled_at });
    }
    return out;
  }

  /** The decrypted templates of everyone, for the matcher (RAM only). */
  async load(): Promise<EnrolledPerson[]> {
    const out: EnrolledPerson[] = [];
    for (const row of this.#rows()) out.push({ personId: row.person_id, templates: (await this.#open(row)).templates.map(fromB64) });
    return out;
  }

  /** Moves on every enrolment, rename and deletion: the face stage reloads templates when it changes. */
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

  /** Removes a person and their templates at once (audited `unenrolled`). @throws CamveilError `CAMVEIL_E_PERSON_NOT_FOUND`. */
  delete(personId: string): void {
    this.#row(personId);
    this.#remove([personId]);
  }

  /**
   * Removes everyone (faceRecognition withdrawn, data deletion). Each person is audited `unenrolled`.
   * Returns how many people were removed.
   */
  deleteAll(): number {
    const ids = this.ids();
    this.#remove(ids);
    return ids.length;
  }

  /** Removes these people (ids not enrolled are ignored); returns how many were removed. */
  deleteMany(ids: readonly string[]): number {
    const known = new Set(this.ids());
    const present = [...new Set(ids)].filter((id) => known.has(id));
    this.#remove(present);
    return present.length;
  }

  /** The ids of everyone enrolled (no decryption). */
  ids(): string[] {
    return this.#db.prepare<[], { person_id: string }>('SELECT person_id FROM faces_people').all().map((r) => r.person_id);
  }

  #remove(ids: readonly string[]): void {
    if (ids.length === 0) return;
    this.#db.transaction(() => {
      const del = this.#db.prepare('DELETE FROM faces_people WHERE person_id = ?');
      for (const id of ids) {
        del.run(id);
        const record = this.#o.ledger?.recordUnenrolment(id, this.#ctx(`faces delete ${id}`));
        this.#o.audit.append('consent.changed', {
          state: 'unenrolled',
          feature: 'faceRecognition',
          policyVersion: this.#o.policyVersion,
          subject: id,
          ...(record === undefined ? {} : { ledgerSeq: record.seq }),
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
    return this.#db.prepare<[], Row>('SELECT person_id, minor, templates, enrolled_at, sealed FROM faces_people ORDER BY enrolled_at, person_id').all();
  }

  #row(personId: string): Row {
    const row = this.#db.prepare<[string], Row>('SELECT person_id, minor, templates, enrolled_at, sealed FROM faces_people WHERE person_id = ?').get(personId);
    if (row === undefined) throw new CamveilError('CAMVEIL_E_PERSON_NOT_FOUND', `no enrolled person ${personId}`, { where: 'personId' });
    return row;
  }
}

/**
 * Enforces a faceRecognition withdrawal on the templates: when the household's faceRecognition consent is
 * off because of a withdraw record, everyone enrolled before that withdrawal is deleted (audited
 * `unenrolled`). Derived from the ledger each time, so a withdrawal made while the hub was off (or by the
 * CLI) is enforced at the next check; someone enrolled after the withdrawal is left alone. Returns how many
 * people were deleted. An unreadable ledger deletes nothing (and the gate already refuses all face work).
 */
export function purgeAfterWithdrawal(store: EnrolmentStore, ledger: ConsentLedger): number {
  let records;
  try {
    if (ledger.currentConsent().faceRecognition) return 0;
    records = ledger.records();
  } catch {
    return 0;
  }
  const withdrawal = records.findLast((r) => r.consent === 'faceRecognition' && (r.kind === 'withdraw' || r.kind === 'grant'));
  if (withdrawal?.kind !== 'withdraw') return 0;
  const enrolledAt = new Map(records.filter((r) => r.kind === 'enrol' && r.subject !== undefined).map((r) => [r.subject!, r.seq]));
  const stale = store.ids().filter((id) => (enrolledAt.get(id) ?? 0) < withdrawal.seq);
  return store.deleteMany(stale);
}
