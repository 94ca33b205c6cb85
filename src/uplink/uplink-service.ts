import { unlink } from 'node:fs/promises';
import type Database from 'better-sqlite3';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/schema.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { ConsentLedger } from '../policy/consent-ledger.js';
import type { PolicyGate } from '../policy/gate.js';
import type { UploadControl } from '../policy/withdrawal-enforcer.js';
import { heldUploadCutoff } from '../policy/withdrawal.js';
import type { UploadQueue } from '../publishing/sealed-publisher.js';
import { StagedUploads } from '../store/staged-uploads.js';
import { DeletionRequests } from './deletion-requests.js';
import { cutUploads, expireHeldUploads, holdUploads } from './local-only.js';
import { Outbox, type OutboxEntry, type OutboxStats } from './outbox.js';
import { remoteStoreFor } from './remote-store-factory.js';
import { stagedPath, stageStored, stagingDir, sweepStaging } from './staging.js';
import { Uploader } from './uploader.js';

/**
 * Whether the remote store passed its check at start (an s3 bucket that exists and takes the credentials):
 * when it did not, the error code and a message naming the bucket (never a credential), and uploads wait.
 */
export interface StoreStatus {
  ok: boolean;
  code?: string;
  message?: string;
}

/** How often deletion requests the cloud has not confirmed are sent again. */
const DELETION_RETRY_MS = 5 * 60_000;

export interface UplinkServiceOptions {
  db: Database.Database;
  /** The configuration now (uplink, region, data directory, storage retention). */
  config: () => Config;
  gate: Pick<PolicyGate, 'mayUpload' | 'mayQueueUploads'>;
  /** Read by the held queue's retention (an unsigned stop's hold: policy/withdrawal.ts). */
  ledger: Pick<ConsentLedger, 'records'>;
  audit: AuditLog;
  bus: EventBus;
  logger: Logger;
  /** The hub's pseudonym, which the cloud knows it by. */
  hubPseudonym: () => string;
}

/**
 * The hub's way to the cloud, when uploads are configured: the outbox in the hub's database, the upload
 * staging under `<dataDir>/outbox/` (swept of leftovers at start), the uploader over the remote store of
 * the hub's zone, the retention of a held queue, and the retries of deletion requests. Staging asks the
 * gate whether objects are queued now; each upload asks it again right before it is sent. What a mode
 * change does to the queue (abort, hold, destroy) is the withdrawal enforcer's call, through
 * {@link UploadControl}. With uploads off, everything here is absent and `queue` is undefined.
 */
export class UplinkService implements UploadControl {
  readonly #o: UplinkServiceOptions;
  #zone: string | undefined;
  #outbox: Outbox | undefined;
  #uploader: Uploader | undefined;
  #staging = '';
  #queue: UploadQueue | undefined;
  #flush: (() => void) | undefined;
  #deletionTimer: NodeJS.Timeout | undefined;
  /** What the store's last check at start said (undefined before one ends, or for a store without a check). */
  #store: StoreStatus | undefined;

  constructor(options: UplinkServiceOptions) {
    this.#o = options;
  }

  /**
   * Opens the outbox, sweeps the staging, starts the deletion retries and, in cloud mode, the uploader
   * (uploads configured only).
   */
  start(): void {
    const { db, logger, bus } = this.#o;
    const config = this.#o.config();
    const cloud = remoteStoreFor(config, this.#o.hubPseudonym());
    if (cloud === undefined) return;
    this.#zone = cloud.zone;
    const outbox = new Outbox(db);
    const staging = stagingDir(config.dataDir);
    this.#staging = staging;
    sweepStaging(staging, outbox, logger);
    const uploader = new Uploader({
      outbox,
      gate: this.#o.gate,
      remote: cloud.remote,
      logger,
      onOutcome: (r) => {
        // A staged link has done its work once the object is uploaded or refused for good.
        if (r.result === 'uploaded' || r.result === 'rejected') void unlink(stagedPath(staging, r.objectId)).catch(() => undefined);
        bus.emit('upload.result', { objectId: r.objectId, kind: r.kind, bytes: r.bytes, ms: r.ms, result: r.result, ...(r.code === undefined ? {} : { code: r.code }) });
      },
      onStoreCheck: (c) => {
        const transport = cloud.remote.description.type;
        this.#store = c.ok ? { ok: true } : { ok: false, code: c.code, message: c.message };
        bus.emit('uplink.store', c.ok ? { ok: true, transport, cleaned: c.cleaned, ...(c.warning === undefined ? {} : { warning: c.warning }) } : { ok: false, transport, code: c.code, message: c.message, retryInMs: c.retryInMs });
      },
    });
    this.#outbox = outbox;
    this.#uploader = uploader;
    // Only in cloud mode: a store's check at start (an s3 bucket's HeadBucket, the orphan cleanup) already
    // talks to the cloud, which local-only mode forbids. A grant starts it (resume()); a held queue waits.
    if (this.#o.gate.mayQueueUploads().allowed) uploader.start();
    const mayQueue = (): boolean => this.#o.gate.mayQueueUploads().allowed;
    // Clips, snapshots and event records: queued in the transaction that stores them (a kill cannot part the two).
    const staged = new StagedUploads({ outbox, staging, mayQueue, queued: () => uploader.kick(), logger });
    this.#queue = { enqueue: (item) => void this.stage(item), prepare: (item) => staged.prepare(item) };
    const requests = new DeletionRequests(db);
    this.#flush = () => {
      if (requests.pending().length === 0) return;
      requests
        .flush(cloud.remote)
        .then((r) => logger.info(r, 'cloud deletion requests'))
        .catch((error: unknown) => logger.warn({ err: error }, 'cloud deletion requests failed; will retry'));
    };
    this.#flush();
    this.#deletionTimer = setInterval(this.#flush, DELETION_RETRY_MS);
    this.#deletionTimer.unref();
  }

  /** Stops the deletion retries and the uploader (an upload in flight is aborted and stays queued). */
  async stop(): Promise<void> {
    clearInterval(this.#deletionTimer);
    this.#deletionTimer = undefined;
    await this.#uploader?.stop();
  }

  /** Where the sealed publisher queues objects (undefined while uploads are off). */
  get queue(): UploadQueue | undefined {
    return this.#queue;
  }

  /** The outbox (face albums tell whether a replaced album reached the cloud); undefined while uploads are off. */
  get outbox(): Outbox | undefined {
    return this.#outbox;
  }

  /** The zone, the outbox's counts and the store's last check, for the hub's (sealed) state; undefined while uploads are off. */
  stats(): { zone: string; outbox: OutboxStats; store?: StoreStatus } | undefined {
    if (this.#zone === undefined || this.#outbox === undefined || !this.#o.db.open) return undefined;
    return { zone: this.#zone, outbox: this.#outbox.stats(), ...(this.#store === undefined ? {} : { store: this.#store }) };
  }

  /** The residency zone uploads go to; undefined while uploads are off. */
  get zone(): string | undefined {
    return this.#zone;
  }

  /** Stages an object already stored (face albums); resolves once it is queued or left out. */
  async stage(item: OutboxEntry): Promise<void> {
    const outbox = this.#outbox;
    const uploader = this.#uploader;
    if (outbox === undefined || uploader === undefined) return;
    await stageStored(item, { staging: this.#staging, outbox, mayQueue: () => this.#o.gate.mayQueueUploads().allowed, queued: () => uploader.kick(), logger: this.#o.logger });
  }

  /** Sends pending deletion requests now (they were recorded in the database first). */
  flushDeletions(): void {
    this.#flush?.();
  }

  resume(): void {
    try {
      this.#uploader?.start();
      this.#uploader?.kick();
    } catch (error) {
      this.#o.logger.error({ err: error }, 'cloud mode, but the uploader cannot start');
    }
  }

  async hold(): Promise<void> {
    if (this.#uploader !== undefined) await holdUploads(this.#uploader);
  }

  async cut(reason: string): Promise<string[]> {
    const destroyed = this.#uploader !== undefined && this.#outbox !== undefined ? await cutUploads(this.#uploader, this.#outbox, reason) : [];
    // The cloud client is closed until the household grants again (deletion requests still go out).
    await this.#uploader?.stop();
    return destroyed;
  }

  queuedCount(): number {
    return this.#outbox?.stats().queued ?? 0;
  }

  /**
   * The retention sweep's part for the upload queue an unsigned stop holds: held uploads queued longer ago
   * than `storage.retentionDays` are deleted, audited (policy/withdrawal.ts `heldUploadCutoff`).
   */
  expireHeld(at: number): void {
    if (this.#outbox === undefined) return;
    try {
      const cutoff = heldUploadCutoff(this.#o.ledger.records(), this.#o.config().storage.retentionDays, at);
      if (cutoff === undefined) return;
      const expired = expireHeldUploads(this.#outbox, cutoff);
      if (expired.length === 0) return;
      this.#o.audit.append('deletion', { scope: 'retention', count: expired.length, reason: 'held-upload-retention', objectIds: expired.slice(0, 256) });
      this.#o.logger.info({ deleted: expired.length }, 'held uploads past storage retention deleted');
    } catch (error) {
      // An unreadable ledger holds nothing (and deletes nothing); a staged file left behind goes with the next start's staging sweep.
      this.#o.logger.warn({ err: error }, 'held upload retention failed; will retry');
    }
  }
}
