import type Database from 'better-sqlite3';
import type { EnrolmentStore } from './analysis/faces/enrolment.js';
import type { FaceStage, FaceStageStats } from './analysis/faces/face-stage.js';
import type { FrameAnalyser } from './analysis/frame-analyser.js';
import type { SignedAuditHead } from './audit/audit-anchor.js';
import type { BackoffOptions } from './cameras/backoff.js';
import type { CameraStatus } from './cameras/camera-pipeline.js';
import { CameraManager } from './cameras/camera-manager.js';
import { openCameraList } from './cameras/camera-list.js';
import { ffmpegMajorVersion, findFfmpeg } from './cameras/ffmpeg-binary.js';
import type { LiveConfig } from './config/live-config.js';
import type { Config } from './config/schema.js';
import { looseSecretFiles } from './config/secret-files.js';
import { auditIncidents } from './control/incident-monitor.js';
import { ControlService } from './control/control-service.js';
import { loadOrCreateHubKeys, type HubKeys } from './crypto/hub-keys.js';
import { pseudonym } from './crypto/pseudonym.js';
import type { ErrorCode } from './errors.js';
import { EventBus, type CamveilEvents } from './events.js';
import { FaceAlbums } from './faces/face-albums.js';
import { FacesService } from './faces/faces-service.js';
import type { Logger } from './log.js';
import type { ConsentService } from './policy/consent-service.js';
import { openPolicy, type HubPolicy } from './policy/open-policy.js';
import { WithdrawalEnforcer } from './policy/withdrawal-enforcer.js';
import { MediaService } from './recording/media-service.js';
import type { MediaSink } from './recording/sink.js';
import type { RetentionReport } from './store/retention.js';
import { openDatabase } from './store/database.js';
import type { OutboxStats } from './uplink/outbox.js';
import { UplinkService } from './uplink/uplink-service.js';

export interface GatewayOptions {
  config: Config;
  logger: Logger;
  bus?: EventBus;
  /** Replaces the media sink the gateway builds from the config (tests that inspect clips in memory). */
  sink?: MediaSink;
  env?: NodeJS.ProcessEnv;
  /** Reconnect pacing and stall detection; tests shorten them. */
  backoff?: BackoffOptions;
  stallTimeoutMs?: number;
  /** How often retention runs (default hourly; it also runs whenever a new object would exceed the quota). */
  retentionIntervalMs?: number;
  /** More analysers offered every camera's masked frames, after the face stage; started and stopped with the cameras. */
  analysers?: readonly FrameAnalyser[];
}

export interface GatewayState {
  hub: string;
  region: string;
  ffmpeg: { origin: 'system' | 'npm'; major: number };
  /** Where media goes: `memory-only` when no household recipients are configured (nothing can be encrypted). */
  media: 'sealed' | 'memory-only' | 'custom';
  /** The face stage: model backend while loaded, calls, frames gated out and dropped (counts only). */
  faces?: FaceStageStats & { disabledReason?: ErrorCode };
  /** Clips of cameras with bystanderBlurClips: re-encoded with bystanders pixelated, passed on as recorded (none seen), withheld (blurring failed). */
  clipBlur?: { blurred: number; unchanged: number; withheld: number };
  /** The MQTT protocol in use with the broker: 5 where it supports it, 3.1.1 (4) otherwise. */
  mqtt?: { protocolVersion: 4 | 5 };
  /** `cloud` or `local-only`, and why (a machine-readable reason from the gate). */
  mode: { mode: 'cloud' | 'local-only'; reason: string };
  policyVersion: string;
  storage?: { objects: number; bytes: number; quotaBytes: number; retentionDays: number; lastRetention?: RetentionReport };
  uplink?: { zone: string; outbox: OutboxStats };
  cameras: Array<CameraStatus & { features: { motion: boolean; faceRecognition: { allowed: boolean; reason: string }; localRecording: { allowed: boolean; reason: string } } }>;
  /** The audit log's head, signed by the hub now: the app remembers the highest it saw and reports a rollback. */
  audit?: SignedAuditHead;
}


/**
 * The composition root: hub keys, the encrypted store, the upload outbox and one pipeline per enabled
 * camera, with their lifecycles. A camera that fails (unreachable, wrong password, not video) shows that in
 * its own status and retries; the others keep working. The constructor only sets fields.
 */
export class Gateway {
  readonly bus: EventBus;
  readonly #o: GatewayOptions;
  #cameras: CameraManager | undefined;
  #ffmpeg: GatewayState['ffmpeg'] | undefined;
  #keys: HubKeys | undefined;
  #db: Database.Database | undefined;
  /** The configuration in force (the file's, app-managed cameras, `config/set`); the caller's options are never written to. */
  #live: LiveConfig | undefined;
  #policy: HubPolicy | undefined;
  #mediaService: MediaService | undefined;
  #uplink: UplinkService | undefined;
  #faces: FacesService | undefined;
  #control: ControlService | undefined;
  /** Incidents found while starting (audit chain, secret files): told to the household once MQTT connects. */
  readonly #startIncidents: Array<CamveilEvents['incident']> = [];
  #stopIncidentAudit: (() => void) | undefined;

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.bus = options.bus ?? new EventBus();
  }

  async start(): Promise<void> {
    const { logger } = this.#o;
    const file = this.#o.config;
    const binaries = findFfmpeg(this.#o.env ?? process.env);
    const major = ffmpegMajorVersion(binaries.ffmpeg);
    this.#ffmpeg = { origin: binaries.origin, major };
    const keys = await loadOrCreateHubKeys(file.dataDir);
    this.#keys = keys;
    const db = openDatabase(file.dataDir);
    this.#db = db;
    const { live, registry } = openCameraList(db, file, keys.identity, logger);
    this.#live = live;
    const config = () => live.current;
    const cam = (id: string) => this.pseudonymise('cam', id);
    const policy = openPolicy({
      db,
      config,
      cameras: () => live.cameras(),
      signingKey: keys.signingKey,
      pseudonymise: (k, v) => this.pseudonymise(k, v),
      logger,
      bus: this.bus,
      enforce: (change) => enforcer.enforce(change),
      // Someone who could not sign stopped a flow: the household is told (sealed `security` event).
      onUnsignedStop: (consent) => this.bus.emit('incident', { reason: 'unsigned-stop', detail: `${consent} stopped by an unsigned withdrawal; nothing deleted` }),
    });
    this.#policy = policy;
    const enforcer = new WithdrawalEnforcer({ bus: this.bus, audit: policy.audit, logger, uploads: () => this.#uplink });
    this.#checkIntegrity();
    const faces = new FacesService({
      db,
      config,
      cameraIds: () => live.enabledCameraIds(),
      hub: keys,
      audit: policy.audit,
      ledger: policy.ledger,
      gate: policy.gate,
      bus: this.bus,
      logger,
      cameraPseudonym: cam,
      albums: (people) => this.#albumsFor(people),
    });
    this.#faces = faces;
    const up = new UplinkService({ db, config, gate: policy.gate, ledger: policy.ledger, audit: policy.audit, bus: this.bus, logger, hubPseudonym: () => this.pseudonymise('hub', file.hub.id) });
    this.#uplink = up;
    up.start();
    const media = new MediaService({
      db,
      config,
      gate: policy.gate,
      bus: this.bus,
      logger,
      ffmpegPath: binaries.ffmpeg,
      cameraPseudonym: cam,
      uploads: () => up.queue,
      faces: () => faces.stage,
      bystanders: faces.bystanders,
      ...(this.#o.sink === undefined ? {} : { sink: this.#o.sink }),
      ...(this.#o.retentionIntervalMs === undefined ? {} : { retentionIntervalMs: this.#o.retentionIntervalMs }),
      onRetention: (report) => up.expireHeld(report.lastRunAt),
      onIncident: (incident) => {
        this.#startIncidents.push(incident);
        this.bus.emit('incident', incident);
      },
    });
    this.#mediaService = media;
    media.start();
    // The mode is established (and local-only enforced) before any camera produces anything.
    await policy.consent.start();
    await faces.start();
    logger.info({ ffmpeg: binaries.origin, ffmpegMajor: major, cameras: live.cameras().length, media: media.media, zone: up.zone }, 'gateway starting');
    const stage = faces.stage!;
    const cameras = new CameraManager({
      live,
      registry,
      cameraFacts: policy.cameraFacts,
      bus: this.bus,
      logger,
      ffmpeg: { path: binaries.ffmpeg, major },
      sink: media.sink!,
      analysers: [stage, ...(this.#o.analysers ?? [])],
      extraAnalysers: this.#o.analysers ?? [],
      bystanderBoxes: stage.bystanderBoxes.bind(stage),
      watch: (id, analysis) => faces.bystanders.watch(id, analysis),
      pseudonymise: (k, v) => this.pseudonymise(k, v),
      env: this.#o.env ?? process.env,
      ...(this.#o.backoff === undefined ? {} : { backoff: this.#o.backoff }),
      ...(this.#o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: this.#o.stallTimeoutMs }),
    });
    this.#cameras = cameras;
    await cameras.start();
    this.#control = new ControlService({
      config,
      fileCameraIds: () => live.fileCameraIds,
      db,
      keys,
      policy,
      bus: this.bus,
      logger,
      cameraRegistry: registry,
      enrolment: () => this.enrolment,
      statuses: () => cameras.statuses(),
      applyCamera: (change) => cameras.apply(change),
      applySettings: (patch) => cameras.applySettings(patch),
      dataRights: () => ({
        db,
        config: live.current,
        audit: policy.audit,
        exportTrailer: () => policy.anchored.exportTrailer(),
        ledger: policy.ledger,
        pseudonymise: (k, v) => this.pseudonymise(k, v),
        ...(media.store === undefined ? {} : { store: media.store }),
        ...(faces.enrolment === undefined ? {} : { people: faces.enrolment }),
      }),
      state: () => this.state(),
      cameraPseudonym: cam,
      startIncidents: this.#startIncidents,
    });
    // After the cameras: the broker's trial connection (up to 3 s for an unreachable one) must not hold them up.
    await this.#control.start();
  }

  /** Face albums: sealed to the household like clips, stored and queued the same way (only with a store). */
  #albumsFor(people: EnrolmentStore): FaceAlbums | undefined {
    const store = this.#mediaService?.store;
    const publisher = this.#mediaService?.publisher;
    const policy = this.#policy!;
    const live = this.#live!;
    if (store === undefined || publisher === undefined) return undefined;
    const { faceRecognition } = live.current;
    const outbox = this.#uplink?.outbox;
    return new FaceAlbums({
      db: this.#db!,
      bus: this.bus,
      logger: this.#o.logger,
      hub: this.#keys!,
      publisher,
      store,
      people,
      gate: policy.gate,
      ...(outbox === undefined ? {} : { outbox }),
      flushDeletions: () => this.#uplink?.flushDeletions(),
      cameraPseudonym: (id) => this.pseudonymise('cam', id),
      policyVersion: live.current.privacy.policyVersion,
      settings: { embeddings: faceRecognition.albumEmbeddings, maxSightings: faceRecognition.albumMaxSightings, intervalMs: faceRecognition.albumIntervalSeconds * 1000 },
      retentionDays: () => live.current.storage.retentionDays,
      audit: policy.audit,
    });
  }

  /** Stops every camera (open clips end and are sealed and stored), then the uploader and the database. */
  async stop(): Promise<void> {
    await this.#cameras?.stop();
    // Pending albums are sealed and queued now, while the store and the outbox are still open.
    await this.#faces?.stop();
    this.#mediaService?.stop();
    this.#policy?.consent.stop();
    this.#stopIncidentAudit?.();
    await this.#control?.stop();
    await this.#uplink?.stop();
    this.#policy?.anchored.flush();
    this.#db?.close();
    this.#db = undefined;
    this.#o.logger.info('gateway stopped');
  }

  /** What the hub reports about itself: health and counters, no secrets and no personal data. */
  state(): GatewayState {
    const config = this.#live?.current ?? this.#o.config;
    const gate = this.#policy?.gate;
    const faces = this.#faces?.stats();
    const storage = this.#mediaService?.storage();
    const uplink = this.#db?.open === true ? this.#uplink?.stats() : undefined;
    const state: GatewayState = {
      hub: this.#keys === undefined ? 'hub_unknown' : this.pseudonymise('hub', config.hub.id),
      region: config.hub.region,
      ffmpeg: this.#ffmpeg ?? { origin: 'system', major: 0 },
      media: this.#mediaService?.media ?? 'memory-only',
      mode: this.#policy?.consent.mode ?? { mode: 'local-only', reason: 'not-started' },
      ...(this.#control?.protocolVersion === undefined ? {} : { mqtt: { protocolVersion: this.#control.protocolVersion } }),
      ...(faces === undefined ? {} : { faces }),
      ...(this.#faces === undefined || this.#faces.bystanders.watchedCount === 0 ? {} : { clipBlur: this.#mediaService?.clipOutcomes() ?? { blurred: 0, unchanged: 0, withheld: 0 } }),
      policyVersion: config.privacy.policyVersion,
      // With each camera, what the gate allows on it now and why not (no personal data).
      cameras: (this.#cameras?.statuses() ?? []).map((status) => ({
        ...status,
        features: {
          motion: status.motion.enabled,
          faceRecognition: gate?.mayRecogniseFaces(status.cameraId) ?? { allowed: false, reason: 'not-started' },
          localRecording: gate?.mayRecordLocally(status.cameraId) ?? { allowed: false, reason: 'not-started' },
        },
      })),
      ...(storage === undefined ? {} : { storage }),
      ...(uplink === undefined ? {} : { uplink }),
    };
    const policy = this.#policy;
    if (policy !== undefined && this.#db?.open === true) state.audit = policy.anchored.signed(policy.audit.head());
    return state;
  }

  /** Consent changes, applied and enforced at once (the CLI and the MQTT control plane call in here). */
  get consent(): ConsentService {
    if (this.#policy === undefined) throw new Error('the gateway has not started');
    return this.#policy.consent;
  }

  /** Enrolled people (enrol, list, rename, delete); the face stage picks changes up by the store's revision. */
  get enrolment(): EnrolmentStore {
    const enrolment = this.#faces?.enrolment;
    if (enrolment === undefined) throw new Error('the gateway has not started');
    return enrolment;
  }

  /** Whether faces may be enrolled now (region, consent, policy), and why not. */
  enrolmentDecision(): { allowed: boolean; reason: string } {
    if (this.#policy === undefined) throw new Error('the gateway has not started');
    return this.#policy.gate.mayEnrolFaces();
  }

  /** Whether face recognition may run on a camera now, and why not (the gate's answer). */
  faceDecision(cameraId: string): { allowed: boolean; reason: string } {
    if (this.#policy === undefined) throw new Error('the gateway has not started');
    return this.#policy.gate.mayRecogniseFaces(cameraId);
  }

  /** The face stage's counters (calls, gated-out and dropped frames, whether models are loaded); undefined before start. */
  faceStats(): ReturnType<FaceStage['stats']> | undefined {
    return this.#faces?.stage?.stats();
  }

  /** The hub's keyed pseudonym of a value (camera id, serial, hub id). */
  pseudonymise(kind: string, value: string): string {
    if (this.#keys === undefined) throw new Error('the gateway has not started');
    return pseudonym(this.#keys.pseudonymSecret, kind, value);
  }

  /**
   * Every incident is audited (rate-limited per reason) from here on. Then what can only be found at start:
   * an audit chain that no longer verifies (edited, removed or reordered records) and secret files that
   * group or others can read. Each is an incident at once (audited) and is told to the household once the
   * control plane is connected.
   */
  #checkIntegrity(): void {
    const { logger } = this.#o;
    this.#stopIncidentAudit = auditIncidents(this.bus, this.#policy!.audit, {
      cameraPseudonym: (id) => this.pseudonymise('cam', id),
      onError: (error) => logger.error({ err: error }, 'incident not audited'),
    });
    const found: Array<CamveilEvents['incident']> = [];
    const chain = this.#policy!.audit.verify();
    if (!chain.ok) {
      logger.error({ brokenAt: chain.brokenAt, code: 'CAMVEIL_E_AUDIT_BROKEN' }, `audit log hash chain broken at record ${chain.brokenAt}: ${chain.reason}`);
      found.push({ reason: 'audit-chain-broken', detail: `first broken record ${chain.brokenAt}` });
    }
    const anchored = this.#policy!.anchored.checked;
    if (!anchored.ok) {
      // The anchor is left as found (the evidence) and no longer moved until someone looks: docs/privacy.md, "Audit log".
      logger.error({ code: 'CAMVEIL_E_AUDIT_ROLLBACK' }, anchored.reason);
      found.push({ reason: 'audit-chain-broken', detail: anchored.detail });
    }
    const loose = looseSecretFiles(this.#o.config);
    if (loose.length > 0) {
      logger.error({ files: loose }, 'secret files readable by group or others: run chmod 600 on them');
      found.push({ reason: 'key-file-permissions', detail: `${loose.length} secret file(s) readable by group or others: ${[...new Set(loose)].join(', ')}` });
    }
    for (const incident of found) {
      this.#startIncidents.push(incident);
      this.bus.emit('incident', incident);
    }
  }
}
