import type Database from 'better-sqlite3';
import { BystanderLog } from '../analysis/faces/bystander-log.js';
import { EnrolmentStore } from '../analysis/faces/enrolment.js';
import { FaceStage, type FaceStageStats } from '../analysis/faces/face-stage.js';
import { FaceWorkerClient } from '../analysis/faces/face-worker-client.js';
import { FaceModelHealth } from '../analysis/faces/model-health.js';
import { startSightingRetention } from '../analysis/faces/sightings.js';
import { purgeAfterWithdrawal } from '../analysis/faces/withdrawal-purge.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/schema.js';
import type { ErrorCode } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { ConsentLedger } from '../policy/consent-ledger.js';
import type { PolicyGate } from '../policy/gate.js';
import { rulesFor } from '../policy/region-rules.js';
import type { FaceAlbums } from './face-albums.js';
import { openFaceAlbums, type AlbumPublishing } from './open-face-albums.js';

/** The held data's retention can end by time alone, with no ledger change to announce it. */
const HOLD_CHECK_MS = 3_600_000;

export interface FacesServiceOptions {
  db: Database.Database;
  config: () => Config;
  /** The enabled cameras now: the face stage unloads its models when none of them may use faces. */
  cameraIds: () => readonly string[];
  hub: { identity: string; recipient: string };
  audit: AuditLog;
  ledger: ConsentLedger;
  gate: PolicyGate;
  bus: EventBus;
  logger: Logger;
  cameraPseudonym: (cameraId: string) => string;
  /** Where face albums are published, asked once the enrolment store is open (no store, memory-only media: no albums). */
  albumPublishing?: () => AlbumPublishing;
}

/**
 * Faces on the hub: the enrolled people, the face stage (a FrameAnalyser; models load on the first frame
 * the gate allows) and its model health, sighting retention, the bystander boxes for clip blurring, the
 * face albums, and what a faceRecognition withdrawal does to all of them. That last part follows
 * `consent.changed` (the consent service's one watcher of the ledger, which also sees the CLI's changes):
 * templates and sightings are purged when a withdrawal may destroy them, bystander boxes are forgotten,
 * the stage unloads its models when no camera may use them, and the albums look for deletions.
 */
export class FacesService {
  readonly #o: FacesServiceOptions;
  readonly #bystanders = new BystanderLog();
  #enrolment: EnrolmentStore | undefined;
  #stage: FaceStage | undefined;
  #health: FaceModelHealth | undefined;
  #albums: FaceAlbums | undefined;
  #offs: Array<() => void> = [];
  #holdTimer: NodeJS.Timeout | undefined;

  constructor(options: FacesServiceOptions) {
    this.#o = options;
  }

  /**
   * Opens the enrolment store and builds the stage (nothing is loaded yet), enforces a withdrawal made
   * while the hub was off, then follows the ledger and starts the albums.
   */
  async start(): Promise<void> {
    const { db, logger, bus, audit, ledger, gate } = this.#o;
    const config = this.#o.config();
    const policyVersion = config.privacy.policyVersion;
    const enrolment = new EnrolmentStore({ db, hub: this.#o.hub, audit, ledger, policyVersion });
    this.#enrolment = enrolment;
    const health = new FaceModelHealth({ bus, logger });
    this.#health = health;
    this.#stage = new FaceStage({
      createWorker: () => new FaceWorkerClient({ onLoad: (error) => health.report(error) }),
      gate,
      cameraIds: this.#o.cameraIds,
      bus,
      logger,
      audit,
      cameraPseudonym: this.#o.cameraPseudonym,
      region: config.hub.region,
      policyVersion,
      people: enrolment,
      onlyWithMotion: config.faceRecognition.onlyWithMotion,
      bystanders: this.#bystanders,
      sightings: enrolment.sightings,
    });
    // Sightings are kept only for corrections: deleted after faceRecognition.sightingRetentionDays.
    const stopSightings = startSightingRetention(
      enrolment.sightings,
      () => this.#o.config().faceRecognition.sightingRetentionDays,
      (n) => logger.info({ deleted: n }, 'face sightings past retention deleted'),
      (error) => logger.warn({ err: error }, 'face sighting retention failed; will retry'),
    );
    const publishing = this.#o.albumPublishing?.();
    if (publishing !== undefined) this.#albums = openFaceAlbums(enrolment, { ...this.#o, ...publishing });
    this.#enforce();
    this.#offs = [stopSightings, bus.on('consent.changed', () => this.#enforce())];
    // Not a poll of the ledger (consent.changed tells every change): a hold's retention ends by time alone,
    // so held templates and albums are looked at again on this slow elapsed-time timer.
    this.#holdTimer = setInterval(() => this.#enforce(), HOLD_CHECK_MS);
    this.#holdTimer.unref();
    await this.#albums?.start();
  }

  /** Stops following the ledger, then the stage; pending albums are sealed and queued while the store and outbox are open. */
  async stop(): Promise<void> {
    clearInterval(this.#holdTimer);
    this.#offs.forEach((off) => off());
    this.#offs = [];
    await this.#stage?.stop();
    await this.#albums?.stop();
  }

  /** Enrolled people; undefined before start. */
  get enrolment(): EnrolmentStore | undefined {
    return this.#enrolment;
  }

  /** The face stage (the built-in FrameAnalyser); undefined before start. */
  get stage(): FaceStage | undefined {
    return this.#stage;
  }

  /** Bystanders' boxes per analysed frame of the cameras with bystanderBlurClips. */
  get bystanders(): BystanderLog {
    return this.#bystanders;
  }

  /** The stage's counters, with why faces are disabled (a model that did not load); undefined before start. */
  stats(): (FaceStageStats & { disabledReason?: ErrorCode }) | undefined {
    if (this.#stage === undefined) return undefined;
    const reason = this.#health?.disabledReason;
    return { ...this.#stage.stats(), ...(reason === undefined ? {} : { disabledReason: reason }) };
  }

  /**
   * What the ledger now says about faces, applied: without faceRecognition, no bystander box outlives the
   * permission it was found under, and the templates and sightings a withdrawal may destroy are deleted
   * (one held by an unsigned stop obeys the region's template retention). An unreadable ledger changes
   * nothing (the gate already refuses all face work).
   */
  #enforce(): void {
    const enrolment = this.#enrolment;
    // The gate's answer on face data: `unknown` while the ledger cannot be read, `keep` while the consent stands.
    const { fate } = this.#o.gate.faceData();
    if (enrolment === undefined || fate === 'unknown') return;
    if (fate !== 'keep') this.#bystanders.forget();
    const heldMaxDays = rulesFor(this.#o.config().hub.region).maxTemplateRetentionDays;
    const removed = purgeAfterWithdrawal(enrolment, this.#o.ledger, { heldMaxDays });
    if (removed > 0) this.#o.logger.info({ removed }, 'faceRecognition withdrawn: enrolled face templates deleted');
    void this.#stage?.reconcile();
    // A person deleted or the consent withdrawn deletes their albums.
    void this.#albums?.check();
  }
}
