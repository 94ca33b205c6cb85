import type Database from 'better-sqlite3';
import type { AuditLog } from '../audit/audit-log.js';
import { monotonicMs } from '../clock.js';
import type { Manifest } from '../crypto/manifest.js';
import { newObjectId } from '../crypto/sealed-object.js';
import type { CamveilEvents, EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { PolicyGate } from '../policy/gate.js';
import type { SealedPublisher } from '../publishing/sealed-publisher.js';
import type { ObjectStore } from '../store/object-store.js';
import { DeletionRequests } from '../uplink/deletion-requests.js';
import type { Outbox } from '../uplink/outbox.js';
import type { EnrolmentStore } from '../analysis/faces/enrolment.js';
import { AlbumRetirement } from './album-retirement.js';
import { FaceAlbumRows, type AlbumSighting, type AlbumState } from './face-album-rows.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** What the household receives, sealed: one person's sightings and, with the opt-in, their templates. */
export interface FaceAlbumContent {
  v: 1;
  personId: string;
  updatedAt: string;
  /** Oldest first; `at` is ISO 8601. */
  sightings: Array<{ sightingId: string; eventId?: string; cameraPseudonym: string; at: string; distance: number }>;
  /** Only with `faceRecognition.albumEmbeddings` and while face-embedding uploads are allowed: 128 little-endian float32, base64, one per template. */
  embeddings?: string[];
}

export interface FaceAlbumSettings {
  /** The household opted in to templates in the album (`faceRecognition.albumEmbeddings`). */
  embeddings: boolean;
  /** Sightings kept per person (`faceRecognition.albumMaxSightings`). */
  maxSightings: number;
  /** At most one album object per person per this many ms (`faceRecognition.albumIntervalSeconds`). */
  intervalMs: number;
}

export interface FaceAlbumsOptions {
  db: Database.Database;
  bus: EventBus;
  logger: Logger;
  /** The hub's own keys: the per-person rows are sealed to its recipient. */
  hub: { identity: string; recipient: string };
  /**
   * Seals album objects to the household's recipients (as clips are), stores and stages them for upload;
   * while it stages nothing (uploads off), no album object is made.
   */
  publisher: Pick<SealedPublisher, 'publish' | 'stagesUploads'>;
  /** The local store, where retired and orphaned album objects are deleted. */
  store: Pick<ObjectStore, 'delete' | 'list'>;
  people: Pick<EnrolmentStore, 'ids' | 'revision' | 'load'>;
  /**
   * The judge, asked at every sighting, check and publication: whether face data may be made now (region,
   * policy acceptance, consent), what becomes of the albums after a withdrawal (a signed or console one, or
   * an erased ledger, deletes them; an unsigned one holds them: policy/withdrawal.ts), and whether an
   * album or a template may be uploaded.
   */
  gate: Pick<PolicyGate, 'faceData' | 'ask'>;
  /** The outbox, to tell whether a replaced album reached the cloud, and to withdraw one still queued. */
  outbox?: Pick<Outbox, 'get' | 'destroyIfQueued'>;
  /** Sends pending deletion requests soon (they are recorded in the database first). */
  flushDeletions?: () => void;
  cameraPseudonym: (cameraId: string) => string;
  policyVersion?: string;
  settings: FaceAlbumSettings;
  /** Sightings older than this are dropped: retention has deleted their events. */
  retentionDays: () => number;
  audit?: AuditLog;
  /** Wall time (epoch ms): album times, retention cutoffs, retired and deletion records. */
  now?: () => number;
  /** Elapsed time (src/clock.ts): the publish interval and retry holds, which a step of the wall clock must not stretch. */
  monotonic?: () => number;
  /** How often sightings past retention are dropped (default hourly). */
  sweepMs?: number;
}

/**
 * Face albums: for each enrolled person, the sightings that `face.known` reports (sighting id, event id,
 * camera pseudonym, time, distance; the last `maxSightings`), kept sealed to the hub, and — when the gate
 * allows face-album uploads — sealed to the household as a `face-album` object, stored and queued for the
 * cloud at most once per interval per person. The app builds albums from them; the cloud holds only
 * ciphertext. Each new album object supersedes the person's previous one, which is deleted on the hub and,
 * once it is known to have reached the cloud, there too (AlbumRetirement). Deleting a person, withdrawing
 * faceRecognition or erasing the ledger deletes the albums the same way; what the albums may do is the
 * gate's answer, never their own reading of the consents. All work runs one step at a time.
 */
export class FaceAlbums {
  readonly #o: FaceAlbumsOptions;
  readonly #rows: FaceAlbumRows;
  readonly #retirement: AlbumRetirement;
  readonly #now: () => number;
  readonly #monotonic: () => number;
  #albums = new Map<string, AlbumState>();
  /** Per person, on elapsed time: not tried again before (after the gate said no or sealing failed). */
  readonly #notBefore = new Map<string, number>();
  /**
   * Per person, on elapsed time: when the last album was sealed. `publishedAt` in the row is wall time (it
   * outlives the process); the interval is timed from this, so a step back of the clock adds no wait.
   */
  readonly #publishedElapsed = new Map<string, number>();
  #chain: Promise<void> = Promise.resolve();
  #offs: Array<() => void> = [];
  #timers: NodeJS.Timeout[] = [];
  #publishTimer: NodeJS.Timeout | undefined;
  #seen = '';
  #running = false;

  constructor(options: FaceAlbumsOptions) {
    this.#o = options;
    this.#rows = new FaceAlbumRows(options.db, options.hub);
    this.#now = options.now ?? Date.now;
    this.#monotonic = options.monotonic ?? monotonicMs;
    this.#retirement = new AlbumRetirement({
      rows: this.#rows,
      store: options.store,
      ...(options.outbox === undefined ? {} : { outbox: options.outbox }),
      deletions: new DeletionRequests(options.db),
      ...(options.flushDeletions === undefined ? {} : { flushDeletions: options.flushDeletions }),
      now: this.#now,
    });
  }

  /** Loads the albums, settles what an earlier run left, and starts listening. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const { albums, dropped } = await this.#rows.loadAll();
    this.#albums = albums;
    // An album sealed by an earlier run: its interval counts from then, as far as the wall clock can tell,
    // but never from a time still ahead (the clock went back since): then it counts from now.
    const wall = this.#now();
    const elapsed = this.#monotonic();
    this.#publishedElapsed.clear();
    for (const [personId, album] of albums) {
      if (album.publishedAt !== undefined) this.#publishedElapsed.set(personId, elapsed - Math.max(0, wall - album.publishedAt));
    }
    if (dropped > 0) this.#o.logger.warn({ dropped }, 'face albums: rows that did not open with the hub key were deleted');
    await this.#run(async () => {
      this.#check();
      this.#retireOrphans();
      await this.#sweep();
      this.#retirement.settle();
      await this.#resend();
    });
    const { bus } = this.#o;
    this.#offs = [
      bus.on('face.known', (e) => void this.#run(() => this.#record(e))),
      bus.on('mode.changed', (e) => {
        if (e.mode === 'cloud') void this.#run(() => this.#resend());
      }),
      bus.on('upload.result', (e) => {
        if (e.kind === 'face-album' && this.#rows.isRetired(e.objectId)) void this.#run(() => this.#retirement.settle());
      }),
    ];
    const sweep = setInterval(() => void this.#run(() => this.#sweep()), this.#o.sweepMs ?? HOUR_MS);
    sweep.unref();
    this.#timers = [sweep];
    this.#schedule();
  }

  /** Stops listening and seals every pending change now (the gate permitting), then waits for the work to end. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#offs.forEach((off) => off());
    this.#timers.forEach((t) => clearInterval(t));
    if (this.#publishTimer !== undefined) clearTimeout(this.#publishTimer);
    this.#notBefore.clear();
    await this.#run(() => this.#publishDue(true));
  }

  /** Looks for deletions and withdrawals now: call it when people or consents change. */
  check(): Promise<void> {
    return this.#run(() => this.#check());
  }

  #run(step: () => Promise<void> | void): Promise<void> {
    this.#chain = this.#chain.then(step).catch((error: unknown) => this.#o.logger.error({ err: error }, 'face albums: a step failed'));
    return this.#chain;
  }

  async #record(e: CamveilEvents['face.known']): Promise<void> {
    // A sighting reported just as the person was deleted, or while the gate refuses face data (consent
    // withdrawn, a region that prohibits recognition, a policy not yet accepted), is not kept.
    if (!this.#o.gate.faceData(new Date(this.#now())).use.allowed || !this.#o.people.ids().includes(e.personId)) return;
    const album = this.#albums.get(e.personId) ?? { v: 1, sightings: [], dirty: false };
    const distance = Math.round(e.distance * 10_000) / 10_000;
    const known = album.sightings.find((s) => s.sightingId === e.sightingId);
    if (known !== undefined) {
      // The same sighting again (its event became known, or a closer frame): one entry.
      if (e.eventId !== undefined) known.eventId = e.eventId;
      known.distance = Math.min(known.distance, distance);
    } else {
      const sighting: AlbumSighting = { sightingId: e.sightingId, cameraPseudonym: this.#o.cameraPseudonym(e.cameraId), at: e.at, distance };
      if (e.eventId !== undefined) sighting.eventId = e.eventId;
      album.sightings.push(sighting);
      album.sightings.sort((a, b) => a.at - b.at);
      if (album.sightings.length > this.#o.settings.maxSightings) album.sightings.splice(0, album.sightings.length - this.#o.settings.maxSightings);
    }
    album.dirty = true;
    this.#albums.set(e.personId, album);
    await this.#rows.save(e.personId, album);
    this.#schedule();
  }

  /** Arms the timer for the earliest album due: changed, and its interval since the last one over. */
  #schedule(): void {
    if (this.#publishTimer !== undefined) clearTimeout(this.#publishTimer);
    this.#publishTimer = undefined;
    if (!this.#running || !this.#o.publisher.stagesUploads) return;
    let next = Infinity;
    for (const [personId, album] of this.#albums) if (album.dirty) next = Math.min(next, this.#dueAt(personId));
    if (next === Infinity) return;
    this.#publishTimer = setTimeout(() => void this.#run(() => this.#publishDue(false)), Math.max(0, next - this.#monotonic()));
    this.#publishTimer.unref();
  }

  /** On elapsed time. */
  #dueAt(personId: string): number {
    return Math.max((this.#publishedElapsed.get(personId) ?? -Infinity) + this.#o.settings.intervalMs, this.#notBefore.get(personId) ?? -Infinity);
  }

  async #publishDue(all: boolean): Promise<void> {
    const now = this.#monotonic();
    for (const [personId, album] of [...this.#albums]) {
      if (album.dirty && (all || this.#dueAt(personId) <= now)) await this.#publish(personId, album);
    }
    this.#schedule();
  }

  /** Seals the person's album to the household, stores and queues it, and retires the one it replaces. */
  async #publish(personId: string, album: AlbumState): Promise<void> {
    const { publisher, settings, logger } = this.#o;
    if (!publisher.stagesUploads) return;
    const now = this.#now();
    const elapsed = this.#monotonic();
    const gate = this.#mayUpload('face-album');
    if (!gate.allowed) {
      // Nothing is sealed for the household while it could not go out; the change waits, sealed to the hub.
      this.#notBefore.set(personId, elapsed + settings.intervalMs);
      logger.debug({ reason: gate.reason }, 'face album held by the gate');
      return;
    }
    const content: FaceAlbumContent = {
      v: 1,
      personId,
      updatedAt: new Date(now).toISOString(),
      sightings: album.sightings.map((s) => ({
        sightingId: s.sightingId,
        ...(s.eventId === undefined ? {} : { eventId: s.eventId }),
        cameraPseudonym: s.cameraPseudonym,
        at: new Date(s.at).toISOString(),
        distance: s.distance,
      })),
    };
    if (settings.embeddings && this.#mayUpload('face-embedding').allowed) {
      const person = (await this.#o.people.load()).find((p) => p.personId === personId);
      if (person !== undefined) content.embeddings = person.templates.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64'));
    }
    const objectId = newObjectId();
    const manifest: Manifest = {
      version: 1,
      objectId,
      kind: 'face-album',
      startedAt: content.updatedAt,
      contentType: 'application/json',
      ...(this.#o.policyVersion === undefined ? {} : { policyVersion: this.#o.policyVersion }),
    };
    let stored;
    try {
      // Stored and staged for upload in one transaction: a crash in between leaves an orphan that start() retires.
      stored = await publisher.publish({ manifest, body: Buffer.from(JSON.stringify(content), 'utf8'), capturedAt: now });
    } catch (error) {
      this.#notBefore.set(personId, elapsed + settings.intervalMs);
      logger.error({ err: error, object: objectId }, 'face album not stored; will retry');
      return;
    }
    const previous = album.objectId;
    album.objectId = objectId;
    album.publishedAt = now;
    this.#publishedElapsed.set(personId, elapsed);
    album.dirty = false;
    this.#notBefore.delete(personId);
    await this.#rows.save(personId, album);
    logger.debug({ object: objectId, bytes: stored.bytes, sightings: content.sightings.length, embeddings: content.embeddings?.length ?? 0 }, 'face album sealed and queued');
    if (previous !== undefined) this.#retirement.retire([previous]);
  }

  /**
   * Albums whose object never reached the outbox, or whose queued upload local-only mode destroyed, are
   * sealed again once uploads are allowed, so the household's copy does not stay behind until the next sighting.
   */
  async #resend(): Promise<void> {
    const outbox = this.#o.outbox;
    if (outbox === undefined || !this.#mayUpload('face-album').allowed) return;
    for (const [personId, album] of this.#albums) {
      if (album.dirty || album.objectId === undefined || outbox.get(album.objectId) !== undefined) continue;
      album.dirty = true;
      await this.#rows.save(personId, album);
    }
    this.#schedule();
  }

  /**
   * Deletions and withdrawals, looked for when the enrolment store's revision or the gate's answer moves:
   * when the gate says the face data is to be deleted, every album goes; while it is held (unsigned
   * withdrawals only, within the hold limit) the albums stay, sealed to the hub and not published; while it
   * is kept, the albums of people no longer enrolled go. An unreadable ledger changes nothing (the gate
   * already refuses every face upload then).
   */
  #check(): void {
    const { fate } = this.#o.gate.faceData(new Date(this.#now()));
    if (fate === 'unknown') return;
    // The hold can end by time alone (its limit): the fate is part of what is compared.
    const seen = `${this.#o.people.revision()}:${fate}`;
    if (seen === this.#seen) return;
    this.#seen = seen;
    if (fate === 'hold') return;
    if (fate === 'delete') {
      const people = new Set([...this.#albums.keys(), ...this.#rows.personIds()]);
      for (const personId of people) this.#deletePerson(personId, 'face-consent-withdrawn');
      this.#retireOrphans();
      return;
    }
    const enrolled = new Set(this.#o.people.ids());
    for (const personId of new Set([...this.#albums.keys(), ...this.#rows.personIds()])) {
      if (!enrolled.has(personId)) this.#deletePerson(personId, 'person-deleted');
    }
  }

  #mayUpload(dataKind: 'face-album' | 'face-embedding'): { allowed: boolean; reason: string } {
    return this.#o.gate.ask({ kind: 'upload', dataKind });
  }

  #deletePerson(personId: string, reason: string): void {
    const objectId = this.#albums.get(personId)?.objectId;
    this.#albums.delete(personId);
    this.#notBefore.delete(personId);
    this.#publishedElapsed.delete(personId);
    this.#rows.delete(personId);
    const ids = objectId === undefined ? [] : [objectId];
    this.#retirement.retire(ids);
    this.#o.audit?.append('deletion', { scope: 'person', count: ids.length, reason, objectIds: ids, subject: personId });
    this.#o.logger.info({ objects: ids.length, reason }, 'face album deleted');
  }

  /** Album objects in the store that no album names (a crash between storing one and recording it). */
  #retireOrphans(): void {
    const current = new Set([...this.#albums.values()].map((a) => a.objectId));
    const orphans = this.#o.store.list({ kind: 'face-album', limit: 10_000 }).filter((o) => !current.has(o.objectId));
    this.#retirement.retire(orphans.map((o) => o.objectId));
  }

  /** Drops sightings past retention; an album left empty is deleted, a shortened one sealed again. */
  async #sweep(): Promise<void> {
    const cutoff = this.#now() - this.#o.retentionDays() * DAY_MS;
    for (const [personId, album] of [...this.#albums]) {
      const kept = album.sightings.filter((s) => s.at >= cutoff);
      if (kept.length === album.sightings.length) continue;
      if (kept.length === 0) {
        this.#deletePerson(personId, 'retention');
        continue;
      }
      album.sightings = kept;
      album.dirty = true;
      await this.#rows.save(personId, album);
    }
    this.#schedule();
  }
}
