import type Database from 'better-sqlite3';
import type { BystanderLog } from '../analysis/faces/bystander-log.js';
import type { FaceStage } from '../analysis/faces/face-stage.js';
import type { Config } from '../config/schema.js';
import type { CamveilEvents, EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { PolicyGate } from '../policy/gate.js';
import { SealedPublisher, type UploadQueue } from '../publishing/sealed-publisher.js';
import { ObjectStore } from '../store/object-store.js';
import { startRetentionTimer, type RetentionReport } from '../store/retention.js';
import { SealedMediaSink } from '../store/sealed-media-sink.js';
import { BystanderClipSink } from './bystander-clip-sink.js';
import { CountingSink } from './counting-sink.js';
import type { MediaSink } from './sink.js';

const HOUR = 3_600_000;

export interface MediaServiceOptions {
  db: Database.Database;
  config: () => Config;
  gate: Pick<PolicyGate, 'mayRecordLocally'>;
  bus: EventBus;
  logger: Logger;
  ffmpegPath: string;
  cameraPseudonym: (cameraId: string) => string;
  /** Where stored objects are queued for upload (undefined while uploads are off); read at start. */
  uploads: () => UploadQueue | undefined;
  /** The face stage (bystander checks of a clip's frames) and its bystanders log. */
  faces: () => Pick<FaceStage, 'idle' | 'bystanderBoxes'> | undefined;
  bystanders: Pick<BystanderLog, 'watching' | 'between'>;
  /** Replaces the sealing sink (tests that inspect clips in memory). */
  sink?: MediaSink;
  retentionIntervalMs?: number;
  /** Told after every retention run (the held upload queue's retention follows it). */
  onRetention?: (report: RetentionReport) => void;
  /** An incident found at start (a stored object missing from disk). */
  onIncident: (incident: CamveilEvents['incident']) => void;
}

/**
 * Where clips, snapshots and event records go. With household recipients: sealed to them (SealedPublisher),
 * stored in the encrypted object store under its retention and quota, and staged for upload. Without:
 * nothing can be encrypted for anyone, so nothing is kept at all (memory-only). Clips of cameras with
 * bystanderBlurClips pass the bystander blur first.
 */
export class MediaService {
  readonly #o: MediaServiceOptions;
  #store: ObjectStore | undefined;
  #publisher: SealedPublisher | undefined;
  #sink: MediaSink | undefined;
  #media: 'sealed' | 'memory-only' | 'custom' = 'memory-only';
  #lastRetention: RetentionReport | undefined;
  #stopRetention: (() => void) | undefined;
  readonly #clipOutcomes = { blurred: 0, unchanged: 0, withheld: 0 };

  constructor(options: MediaServiceOptions) {
    this.#o = options;
  }

  /** Opens the store (recovering what a crash left), starts retention and builds the sink. */
  start(): void {
    const { logger } = this.#o;
    const inner = this.#o.sink ?? this.#sealedSink();
    const faces = this.#o.faces;
    this.#sink = new BystanderClipSink({
      inner,
      log: this.#o.bystanders,
      ffmpegPath: this.#o.ffmpegPath,
      logger,
      settle: () => faces()?.idle() ?? Promise.resolve(),
      // Each clip's own frames are checked too (the stage asks the gate before every model call).
      scan: (cameraId, frame) => faces()?.bystanderBoxes(cameraId, frame) ?? Promise.resolve(undefined),
      onOutcome: (_camera, outcome) => (this.#clipOutcomes[outcome] += 1),
    });
  }

  stop(): void {
    this.#stopRetention?.();
  }

  /** The sink every camera pipeline writes to; undefined before start. */
  get sink(): MediaSink | undefined {
    return this.#sink;
  }

  /** The object store; undefined without household recipients. */
  get store(): ObjectStore | undefined {
    return this.#store;
  }

  /** Seals, stores and stages objects (face albums use it too); undefined without household recipients. */
  get publisher(): SealedPublisher | undefined {
    return this.#publisher;
  }

  get media(): 'sealed' | 'memory-only' | 'custom' {
    return this.#o.sink === undefined ? this.#media : 'custom';
  }

  clipOutcomes(): { blurred: number; unchanged: number; withheld: number } {
    return { ...this.#clipOutcomes };
  }

  /** Objects, bytes, quota and the last retention run; undefined without a store or once the database is closed. */
  storage(): { objects: number; bytes: number; quotaBytes: number; retentionDays: number; lastRetention?: RetentionReport } | undefined {
    const store = this.#store;
    if (store === undefined || !this.#o.db.open) return undefined;
    const { storage } = this.#o.config();
    return {
      objects: store.count(),
      bytes: store.totalBytes(),
      quotaBytes: storage.quotaMiB * 2 ** 20,
      retentionDays: storage.retentionDays,
      ...(this.#lastRetention === undefined ? {} : { lastRetention: this.#lastRetention }),
    };
  }

  #sealedSink(): MediaSink {
    const { db, logger, bus } = this.#o;
    const config = this.#o.config();
    const household = config.household;
    if (household === undefined) {
      logger.warn('no household recipients configured: clips and snapshots are made in memory and released, never stored or uploaded');
      this.#media = 'memory-only';
      return new CountingSink();
    }
    this.#media = 'sealed';
    const live = this.#o.config;
    // Retention days may change while the hub runs (`config/set`): read at every run.
    const retention = {
      get retentionDays() {
        return live().storage.retentionDays;
      },
      quotaBytes: config.storage.quotaMiB * 2 ** 20,
      reserveBytes: config.storage.reserveMiB * 2 ** 20,
    };
    const store = ObjectStore.open({ db, dataDir: config.dataDir, logger, retention });
    this.#store = store;
    // camveil removes an object's row before its file, so a row whose file is gone at start was made by
    // something outside camveil (a person, a failing disk): the household is told (store-corrupt).
    const missing = store.lastRecovery?.missingFiles ?? 0;
    if (missing > 0) this.#o.onIncident({ reason: 'store-corrupt', detail: `${missing} stored object(s) the index lists were missing from disk; their index rows were dropped` });
    this.#stopRetention = startRetentionTimer(store, retention, this.#o.retentionIntervalMs ?? HOUR, logger, (report) => {
      this.#lastRetention = report;
      this.#o.onRetention?.(report);
    });
    const uploads = this.#o.uploads();
    this.#publisher = new SealedPublisher({ recipients: () => household.recipients, writer: store, ...(uploads === undefined ? {} : { uploads }) });
    return new SealedMediaSink({
      publisher: this.#publisher,
      events: store,
      cameraPseudonym: this.#o.cameraPseudonym,
      policyVersion: () => live().privacy.policyVersion,
      logger,
      mayRecord: (cameraId) => this.#o.gate.mayRecordLocally(cameraId),
      onRefused: (info) => bus.emit('media.refused', info),
      onStored: (info) => bus.emit('object.stored', info),
    });
  }
}
