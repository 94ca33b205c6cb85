import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ControlPlane } from './control/dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './control/embedded-broker.js';
import { hubCommands } from './control/hub-commands.js';
import { faceCommands } from './control/face-commands.js';
import { cameraCommands } from './control/camera-commands.js';
import { CameraRegistry } from './control/camera-registry.js';
import { KeyRegistry } from './control/key-registry.js';
import { HomeAssistantBridge } from './control/ha-discovery.js';
import { applySettingsPatch, cameraSummaries, settingsOf, type HubSettings, type SettingsPatch } from './control/settings.js';
import { connectOptions } from './control/topics.js';
import { CoverTraffic, IncidentLimiter, type SecurityEvent } from './control/sealed-events.js';
import { PendingIncidents } from './control/pending-incidents.js';
import { auditIncidents, IncidentMonitor } from './control/incident-monitor.js';
import { looseSecretFiles } from './config/secret-files.js';
import type { HubHealth } from './control/hub-message.js';
import { readPasswordFile } from './config/secrets.js';
import { link, mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { AuditLog } from './audit/audit-log.js';
import type { SignedAuditHead } from './audit/audit-anchor.js';
import { openAnchoredAudit, type AnchoredAudit } from './audit/anchored-audit.js';
import { CameraPipeline, type CameraStatus } from './cameras/camera-pipeline.js';
import type { FrameAnalyser } from './analysis/frame-analyser.js';
import type { BackoffOptions } from './cameras/backoff.js';
import { describeFactsForLog } from './cameras/device-facts.js';
import { ffmpegMajorVersion, findFfmpeg } from './cameras/ffmpeg-binary.js';
import type { IngestSource } from './cameras/ingest.js';
import { resolveCameraSource } from './cameras/source.js';
import { monotonicMs } from './clock.js';
import type { CameraConfig, Config } from './config/schema.js';
import { resolveCameraPassword } from './config/secrets.js';
import { loadOrCreateHubKeys, type HubKeys } from './crypto/hub-keys.js';
import { pseudonym } from './crypto/pseudonym.js';
import { EventBus, type CamveilEvents } from './events.js';
import { EnrolmentStore } from './analysis/faces/enrolment.js';
import { purgeAfterWithdrawal } from './analysis/faces/withdrawal-purge.js';
import { FaceStage, type FaceStageStats } from './analysis/faces/face-stage.js';
import { FaceWorkerClient } from './analysis/faces/face-worker-client.js';
import { FaceModelHealth } from './analysis/faces/model-health.js';
import type { ErrorCode } from './errors.js';
import { BystanderLog } from './analysis/faces/bystander-log.js';
import { BystanderClipSink } from './recording/bystander-clip-sink.js';
import { FaceAlbums } from './faces/face-albums.js';
import { startSightingRetention } from './analysis/faces/sightings.js';
import type { DeviceFacts } from './cameras/device-facts.js';
import { DEFAULT_CAPABLE_MODELS, DEFAULT_MIN_FACE_STREAM, isFaceCapable, type FaceCapabilityReason } from './policy/device-rules.js';
import type { Logger } from './log.js';
import { ConsentLedger } from './policy/consent-ledger.js';
import { ConsentService, type ModeChange } from './policy/consent-service.js';
import { PolicyGate } from './policy/gate.js';
import { policyFromConfig } from './policy/policy-history.js';
import { CountingSink } from './recording/counting-sink.js';
import type { MediaSink } from './recording/sink.js';
import { openDatabase } from './store/database.js';
import { ObjectStore } from './store/object-store.js';
import { startRetentionTimer, type RetentionReport } from './store/retention.js';
import { SealedMediaSink } from './store/sealed-media-sink.js';
import { SealedPublisher, type UploadQueue } from './publishing/sealed-publisher.js';
import { StagedUploads } from './store/staged-uploads.js';
import { rulesFor } from './policy/region-rules.js';
import { Outbox, type OutboxStats } from './uplink/outbox.js';
import { Uploader } from './uplink/uploader.js';
import { remoteStoreFor } from './uplink/remote-store-factory.js';
import type { RemoteObjectStore } from './uplink/remote-object-store.js';
import { DeletionRequests } from './uplink/deletion-requests.js';
import { cutUploads, expireHeldUploads, holdUploads } from './uplink/local-only.js';
import { heldUploadCutoff } from './policy/withdrawal.js';
import type { AlertKind } from './policy/vocabulary.js';

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

const HOUR = 3_600_000;

/**
 * The composition root: hub keys, the encrypted store, the upload outbox and one pipeline per enabled
 * camera, with their lifecycles. A camera that fails (unreachable, wrong password, not video) shows that in
 * its own status and retries; the others keep working. The constructor only sets fields.
 */
export class Gateway {
  readonly bus: EventBus;
  readonly #o: GatewayOptions;
  readonly #pipelines: CameraPipeline[] = [];
  #ffmpeg: GatewayState['ffmpeg'] | undefined;
  #keys: HubKeys | undefined;
  #db: Database.Database | undefined;
  #store: ObjectStore | undefined;
  #outbox: Outbox | undefined;
  #uploader: Uploader | undefined;
  #zone: string | undefined;
  #stopRetention: (() => void) | undefined;
  #stopDeletions: (() => void) | undefined;
  #broker: EmbeddedBroker | undefined;
  #mqtt: MqttClient | undefined;
  #control: ControlPlane | undefined;
  #stopControl: (() => void) | undefined;
  #makePipeline: ((camera: CameraConfig) => CameraPipeline) | undefined;
  #cameraRegistry: CameraRegistry | undefined;
  #mqttProtocol: 4 | 5 | undefined;
  #fileCameraIds: ReadonlySet<string> = new Set();
  #retention: { retentionDays: number; quotaBytes: number; reserveBytes: number } | undefined;
  #ha: HomeAssistantBridge | undefined;
  #lastRetention: RetentionReport | undefined;
  #media: GatewayState['media'] = 'memory-only';
  #audit: AuditLog | undefined;
  /** Keeps `<dataDir>/audit-head.json` at the audit log's committed head (see audit-anchor.ts). */
  #auditAnchor: AnchoredAudit | undefined;
  #ledger: ConsentLedger | undefined;
  #gate: PolicyGate | undefined;
  #consent: ConsentService | undefined;
  /** Per camera, what the gate is told: the household's switch and the device's capability (updated as cameras identify themselves). */
  readonly #faceCameras = new Map<string, { faceRecognitionEnabled: boolean; faceCapable: boolean }>();
  #faces: FaceStage | undefined;
  /** Whether the face models load: a missing or tampered file disables faces (state and an incident say why). */
  #modelHealth: FaceModelHealth | undefined;
  /** Bystanders' boxes per analysed frame of the cameras with bystanderBlurClips (watched as their pipelines are made). */
  readonly #bystanders = new BystanderLog();
  #clipOutcomes = { blurred: 0, unchanged: 0, withheld: 0 };
  #enrolment: EnrolmentStore | undefined;
  #stopFaces: (() => void) | undefined;
  #albums: FaceAlbums | undefined;
  #flushDeletions: (() => void) | undefined;
  /** Incidents found while starting (audit chain, secret files): told to the household once MQTT connects. */
  readonly #startIncidents: Array<CamveilEvents['incident']> = [];
  #stopIncidentAudit: (() => void) | undefined;
  /** Counts refused requests: bursts of bad signatures or pairing proofs are incidents. */
  readonly #incidentMonitor: IncidentMonitor;

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.bus = options.bus ?? new EventBus();
    this.#incidentMonitor = new IncidentMonitor({ bus: this.bus });
  }

  async start(): Promise<void> {
    const { config, logger } = this.#o;
    const binaries = findFfmpeg(this.#o.env ?? process.env);
    const major = ffmpegMajorVersion(binaries.ffmpeg);
    this.#ffmpeg = { origin: binaries.origin, major };
    this.#keys = await loadOrCreateHubKeys(config.dataDir);
    this.#openPolicy();
    this.#checkIntegrity();
    this.#openFaces();
    const sink = new BystanderClipSink({
      inner: this.#o.sink ?? this.#buildSealedSink(),
      log: this.#bystanders,
      ffmpegPath: binaries.ffmpeg,
      logger,
      settle: () => this.#faces?.idle() ?? Promise.resolve(),
      // Each clip's own frames are checked too (the stage asks the gate before every model call).
      scan: (cameraId, frame) => this.#faces?.bystanderBoxes(cameraId, frame) ?? Promise.resolve(undefined),
      onOutcome: (_camera, outcome) => (this.#clipOutcomes[outcome] += 1),
    });
    // The mode is established (and local-only enforced) before any camera produces anything.
    await this.#consent?.start();
    await this.#albums?.start();
    logger.info({ ffmpeg: binaries.origin, ffmpegMajor: major, cameras: config.cameras.length, media: this.#media, zone: this.#zone }, 'gateway starting');
    this.#makePipeline = (camera) => {
      this.#bystanders.watch(camera.id, camera.bystanderBlurClips ? camera.analysis : undefined);
      return new CameraPipeline({
        camera,
        recording: this.#o.config.recording,
        sink,
        bus: this.bus,
        logger,
        ffmpeg: binaries.ffmpeg,
        ffmpegMajor: major,
        resolveSource: () => this.#resolve(camera),
        analysers: [...(this.#faces === undefined ? [] : [this.#faces]), ...(this.#o.analysers ?? [])],
        ...(this.#faces === undefined ? {} : { bystanderBoxes: this.#faces.bystanderBoxes.bind(this.#faces) }),
        ...(this.#o.backoff === undefined ? {} : { backoff: this.#o.backoff }),
        ...(this.#o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: this.#o.stallTimeoutMs }),
      });
    };
    for (const analyser of this.#o.analysers ?? []) await analyser.start();
    for (const camera of this.#o.config.cameras) {
      if (!camera.enabled) continue;
      const pipeline = this.#makePipeline(camera);
      this.#pipelines.push(pipeline);
      pipeline.start();
    }
    // After the cameras: the broker's trial connection (up to 3 s for an unreachable one) must not hold them up.
    await this.#startControl();
  }

  /** Starts, restarts or stops an app-managed camera after `cameras/add|update|remove`. */
  async #applyCameraChange(change: { kind: 'added' | 'updated'; camera: CameraConfig } | { kind: 'removed'; cameraId: string }): Promise<void> {
    const id = change.kind === 'removed' ? change.cameraId : change.camera.id;
    const i = this.#pipelines.findIndex((p) => p.cameraId === id);
    if (i >= 0) {
      await this.#pipelines[i]!.stop();
      this.#pipelines.splice(i, 1);
    }
    const others = this.#o.config.cameras.filter((c) => c.id !== id);
    if (change.kind === 'removed') {
      this.#o.config = { ...this.#o.config, cameras: others };
      this.#faceCameras.delete(id);
      this.#o.logger.info({ camera: id }, 'camera removed by the app');
      return;
    }
    const camera = change.camera;
    this.#o.config = { ...this.#o.config, cameras: [...others, camera] };
    this.#faceCameras.set(camera.id, { faceRecognitionEnabled: camera.faceRecognition, faceCapable: this.#faceCapability().capable });
    if (camera.enabled && this.#makePipeline !== undefined) {
      const pipeline = this.#makePipeline(camera);
      this.#pipelines.push(pipeline);
      pipeline.start();
    }
    this.#o.logger.info({ camera: camera.id, change: change.kind }, `camera ${change.kind} by the app`);
  }

  /**
   * Applies settings changed over MQTT (`config/set`: zones, masks, sensitivity, analysis fps, retention)
   * in memory. A camera whose settings changed is restarted: its motion detector reads them when built.
   */
  async #applySettings(patch: SettingsPatch): Promise<HubSettings> {
    const next = applySettingsPatch(this.#o.config, patch);
    this.#o.config = next;
    if (this.#retention !== undefined) this.#retention.retentionDays = next.storage.retentionDays;
    for (const { id } of patch.cameras ?? []) {
      const i = this.#pipelines.findIndex((p) => p.cameraId === id);
      const camera = next.cameras.find((c) => c.id === id);
      if (i < 0 || camera === undefined || this.#makePipeline === undefined) continue;
      await this.#pipelines[i]!.stop();
      const pipeline = this.#makePipeline(camera);
      this.#pipelines[i] = pipeline;
      pipeline.start();
    }
    return settingsOf(next);
  }

  /** Stops every camera (open clips end and are sealed and stored), then the uploader and the database. */
  async stop(): Promise<void> {
    await Promise.all(this.#pipelines.map((p) => p.stop()));
    this.#pipelines.length = 0;
    for (const analyser of this.#o.analysers ?? []) await analyser.stop();
    this.#stopFaces?.();
    await this.#faces?.stop();
    // Pending albums are sealed and queued now, while the store and the outbox are still open.
    await this.#albums?.stop();
    this.#stopRetention?.();
    this.#stopDeletions?.();
    this.#consent?.stop();
    this.#stopControl?.();
    this.#stopIncidentAudit?.();
    // The broker may be gone: a stop must not wait for it (systemd would SIGKILL the hub). The clips are
    // already stored; saying goodbye on MQTT gets a few seconds, then the connection is dropped.
    await withinMs(this.#ha?.stop(), STOP_PEER_MS);
    await withinMs(this.#control?.stop(), STOP_PEER_MS);
    const ended = await withinMs(this.#mqtt?.endAsync(), STOP_PEER_MS);
    if (!ended) await withinMs(this.#mqtt?.endAsync(true), STOP_PEER_MS);
    await this.#broker?.close();
    await this.#uploader?.stop();
    this.#auditAnchor?.flush();
    this.#db?.close();
    this.#db = undefined;
    this.#o.logger.info('gateway stopped');
  }

  /** What the hub reports about itself: health and counters, no secrets and no personal data. */
  state(): GatewayState {
    const { config } = this.#o;
    const state: GatewayState = {
      hub: this.#keys === undefined ? 'hub_unknown' : this.pseudonymise('hub', config.hub.id),
      region: config.hub.region,
      ffmpeg: this.#ffmpeg ?? { origin: 'system', major: 0 },
      media: this.#media,
      mode: this.#consent?.mode ?? { mode: 'local-only', reason: 'not-started' },
      ...(this.#mqttProtocol === undefined ? {} : { mqtt: { protocolVersion: this.#mqttProtocol } }),
      ...(this.#faces === undefined ? {} : { faces: { ...this.#faces.stats(), ...(this.#modelHealth?.disabledReason === undefined ? {} : { disabledReason: this.#modelHealth.disabledReason }) } }),
      ...(this.#bystanders.watchedCount === 0 ? {} : { clipBlur: { ...this.#clipOutcomes } }),
      policyVersion: config.privacy.policyVersion,
      // With each camera, what the gate allows on it now and why not (no personal data).
      cameras: this.#pipelines.map((p) => p.status()).map((status) => ({
        ...status,
        features: {
          motion: status.motion.enabled,
          faceRecognition: this.#gate?.mayRecogniseFaces(status.cameraId) ?? { allowed: false, reason: 'not-started' },
          localRecording: this.#gate?.mayRecordLocally(status.cameraId) ?? { allowed: false, reason: 'not-started' },
        },
      })),
    };
    if (this.#store !== undefined && this.#db?.open === true) {
      state.storage = {
        objects: this.#store.count(),
        bytes: this.#store.totalBytes(),
        quotaBytes: config.storage.quotaMiB * 2 ** 20,
        retentionDays: config.storage.retentionDays,
        ...(this.#lastRetention === undefined ? {} : { lastRetention: this.#lastRetention }),
      };
    }
    if (this.#outbox !== undefined && this.#zone !== undefined && this.#db?.open === true) {
      state.uplink = { zone: this.#zone, outbox: this.#outbox.stats() };
    }
    if (this.#audit !== undefined && this.#auditAnchor !== undefined && this.#db?.open === true) state.audit = this.#auditAnchor.signed(this.#audit.head());
    return state;
  }

  /** Consent changes, applied and enforced at once (the CLI and, later, the MQTT control plane call in here). */
  get consent(): ConsentService {
    if (this.#consent === undefined) throw new Error('the gateway has not started');
    return this.#consent;
  }

  /** Enrolled people (enrol, list, rename, delete); the face stage picks changes up by the store's revision. */
  get enrolment(): EnrolmentStore {
    if (this.#enrolment === undefined) throw new Error('the gateway has not started');
    return this.#enrolment;
  }

  /** Whether faces may be enrolled now (region, consent, policy), and why not. */
  enrolmentDecision(): { allowed: boolean; reason: string } {
    if (this.#gate === undefined) throw new Error('the gateway has not started');
    return this.#gate.mayEnrolFaces();
  }

  /** Whether face recognition may run on a camera now, and why not (the gate's answer). */
  faceDecision(cameraId: string): { allowed: boolean; reason: string } {
    if (this.#gate === undefined) throw new Error('the gateway has not started');
    return this.#gate.mayRecogniseFaces(cameraId);
  }

  /** The face stage's counters (calls, gated-out and dropped frames, whether models are loaded); undefined before start. */
  faceStats(): ReturnType<FaceStage['stats']> | undefined {
    return this.#faces?.stats();
  }

  /** The hub's keyed pseudonym of a value (camera id, serial, hub id). */
  pseudonymise(kind: string, value: string): string {
    if (this.#keys === undefined) throw new Error('the gateway has not started');
    return pseudonym(this.#keys.pseudonymSecret, kind, value);
  }

  /**
   * With household recipients: clips and snapshots are sealed to them, stored, and (when uploads are on)
   * queued for the cloud. Without: nothing can be encrypted for anyone, so nothing is kept at all.
   */
  /** The consent ledger, the gate and the audit log live in the hub's database. */
  #openPolicy(): void {
    const { config, logger } = this.#o;
    const db = openDatabase(config.dataDir);
    this.#db = db;
    // The same anchored log as the console commands' (hub-context.ts): checked before anything is appended.
    this.#auditAnchor = openAnchoredAudit(db, { dataDir: config.dataDir, signingKey: this.#keys!.signingKey, onError: (error) => logger.warn({ err: error }, 'audit anchor not written') });
    this.#audit = this.#auditAnchor.log;
    this.#ledger = new ConsentLedger(db);
    const policy = policyFromConfig(config.privacy);
    // Cameras the household added from the app join those of the configuration file (which win on an id clash).
    this.#cameraRegistry = new CameraRegistry(db, this.#keys!.identity);
    const fileIds = new Set(config.cameras.map((c) => c.id));
    this.#fileCameraIds = fileIds;
    const appCameras = this.#cameraRegistry
      .list((id, reason) => this.#o.logger.error({ camera: id, code: 'CAMVEIL_E_CONFIG_INVALID', reason }, `app-managed camera ${id} left out: ${reason}`))
      .filter((c) => !fileIds.has(c.id));
    if (appCameras.length > 0) this.#o.config = { ...config, cameras: [...config.cameras, ...appCameras] };
    for (const c of this.#o.config.cameras) this.#faceCameras.set(c.id, { faceRecognitionEnabled: c.faceRecognition, faceCapable: this.#faceCapability().capable });
    const cameras = this.#faceCameras;
    this.#gate = new PolicyGate({
      ledger: this.#ledger,
      region: config.hub.region,
      policy,
      forcedLocalOnly: config.privacy.localOnly,
      cameras: () => cameras,
      audit: this.#audit,
      cameraPseudonym: (id) => this.pseudonymise('cam', id),
    });
    this.#consent = new ConsentService({
      db,
      ledger: this.#ledger,
      gate: this.#gate,
      audit: this.#audit,
      policyVersion: policy.inForce.version,
      logger,
      enforce: (change) => this.#enforce(change),
      // Someone who could not sign stopped a flow: the household is told (sealed `security` event).
      onUnsignedStop: (consent) => this.bus.emit('incident', { reason: 'unsigned-stop', detail: `${consent} stopped by an unsigned withdrawal; nothing deleted` }),
    });
  }

  /**
   * Every incident is audited (rate-limited per reason) from here on. Then what can only be found at start:
   * an audit chain that no longer verifies (edited, removed or reordered records) and secret files that
   * group or others can read. Each is an incident at once (audited) and is told to the household once the
   * control plane is connected.
   */
  #checkIntegrity(): void {
    const { logger } = this.#o;
    this.#stopIncidentAudit = auditIncidents(this.bus, this.#audit!, {
      cameraPseudonym: (id) => this.pseudonymise('cam', id),
      onError: (error) => logger.error({ err: error }, 'incident not audited'),
    });
    const found: Array<CamveilEvents['incident']> = [];
    const chain = this.#audit!.verify();
    if (!chain.ok) {
      logger.error({ brokenAt: chain.brokenAt, code: 'CAMVEIL_E_AUDIT_BROKEN' }, `audit log hash chain broken at record ${chain.brokenAt}: ${chain.reason}`);
      found.push({ reason: 'audit-chain-broken', detail: `first broken record ${chain.brokenAt}` });
    }
    const anchored = this.#auditAnchor!.checked;
    if (!anchored.ok) {
      // The anchor is left as found (the evidence) and no longer moved until someone looks: README, "Audit log".
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

  /**
   * Enrolled people and the shared face stage. Nothing is loaded here: the stage starts its worker on the
   * first frame the gate allows. A faceRecognition withdrawal (here, by the CLI or while the hub was off)
   * deletes the templates of everyone enrolled before it, checked at start and whenever the ledger moves.
   */
  #openFaces(): void {
    const { config, logger } = this.#o;
    const db = this.#db!;
    const ledger = this.#ledger!;
    const policyVersion = config.privacy.policyVersion;
    const enrolment = new EnrolmentStore({ db, hub: this.#keys!, audit: this.#audit!, ledger, policyVersion });
    this.#enrolment = enrolment;
    const health = new FaceModelHealth({ bus: this.bus, logger });
    this.#modelHealth = health;
    this.#faces = new FaceStage({
      createWorker: () => new FaceWorkerClient({ onLoad: (error) => health.report(error) }),
      gate: this.#gate!,
      cameraIds: () => config.cameras.filter((c) => c.enabled).map((c) => c.id),
      bus: this.bus,
      logger,
      audit: this.#audit!,
      cameraPseudonym: (id) => this.pseudonymise('cam', id),
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
      () => this.#o.config.faceRecognition.sightingRetentionDays,
      (n) => logger.info({ deleted: n }, 'face sightings past retention deleted'),
      (error) => logger.warn({ err: error }, 'face sighting retention failed; will retry'),
    );
    let seen = '';
    const purge = () => {
      let consent;
      try {
        consent = ledger.currentConsent();
      } catch {
        return;
      }
      // A hold can end by time alone (retention): while consent is off, looked at again every hour.
      const key = consent.faceRecognition ? `${consent.seq}` : `${consent.seq}:${Math.floor(Date.now() / HOUR)}`;
      if (key === seen) return;
      seen = key;
      // No bystander box outlives the permission under which the face stage found it.
      if (!consent.faceRecognition) this.#bystanders.forget();
      // Templates held by an unsigned stop still obey the region's template retention.
      const removed = purgeAfterWithdrawal(enrolment, ledger, { heldMaxDays: rulesFor(config.hub.region).maxTemplateRetentionDays });
      if (removed > 0) logger.info({ removed }, 'faceRecognition withdrawn: enrolled face templates deleted');
      void this.#faces?.reconcile();
      // The same tick tells the face albums: a person deleted or the consent withdrawn deletes their albums.
      void this.#albums?.check();
    };
    purge();
    const timer = setInterval(purge, 1000);
    timer.unref();
    this.#stopFaces = () => {
      clearInterval(timer);
      stopSightings();
    };
  }

  /**
   * Whether a camera is face-capable (device-rules.ts). The stream size is not reported by
   * resolveCameraSource yet (plain RTSP cannot tell it at all), and an unknown size fails safe: only the
   * household override, which vouches for the camera, makes such a camera capable.
   */
  #faceCapability(facts: DeviceFacts = {}, size?: { width: number; height: number }): { capable: boolean; reason: FaceCapabilityReason } {
    const p = this.#o.config.privacy;
    const opts = { capableModels: p.faceCapableModels ?? DEFAULT_CAPABLE_MODELS, ...DEFAULT_MIN_FACE_STREAM, householdOverride: p.faceCapableOverride };
    if (size !== undefined) return isFaceCapable(facts, size.width, size.height, opts);
    if (!opts.householdOverride) return { capable: false, reason: 'stream-too-small' };
    return isFaceCapable(facts, opts.minWidth, opts.minHeight, opts);
  }

  /**
   * Makes a mode change true. Entering local-only: every upload in flight is aborted (the gate already
   * refuses new ones, since the ledger changed first), the uploader is stopped, and every queued upload is destroyed — its staging
   * link under `<dataDir>/outbox/` is removed; the local copy stays in the store only under the household's
   * local-recording consent and retention. With `hold` (cloudUpload withdrawn by unsigned requests only)
   * nothing is destroyed: the queue stays, sealed and unsent, until a signed grant sends it or a signed
   * withdrawal or `data/delete` destroys it.
   */
  async #enforce(change: ModeChange): Promise<void> {
    this.bus.emit('mode.changed', { mode: change.to, reason: change.reason });
    if (change.to !== 'local-only') {
      try {
        this.#uploader?.start();
        this.#uploader?.kick();
      } catch (error) {
        this.#o.logger.error({ err: error }, 'cloud mode, but the uploader cannot start');
      }
      return;
    }
    if (change.hold) {
      if (this.#uploader !== undefined) await holdUploads(this.#uploader);
      this.#o.logger.warn({ queued: this.#outbox?.stats().queued ?? 0, reason: change.reason }, 'local-only by an unsigned withdrawal: uploads stopped, queue held (nothing destroyed)');
      return;
    }
    const destroyed = this.#uploader !== undefined && this.#outbox !== undefined ? await cutUploads(this.#uploader, this.#outbox, change.reason) : [];
    // The cloud client is closed until the household grants again (deletion requests still go out).
    await this.#uploader?.stop();
    if (destroyed.length > 0) {
      this.#audit?.append('deletion', { scope: 'object', count: destroyed.length, reason: 'local-only', objectIds: destroyed.slice(0, 256) });
      this.#o.logger.info({ destroyed: destroyed.length, reason: change.reason }, 'local-only: queued uploads destroyed');
    }
  }

  #buildSealedSink(): MediaSink {
    const { config, logger } = this.#o;
    const household = config.household;
    if (household === undefined) {
      logger.warn('no household recipients configured: clips and snapshots are made in memory and released, never stored or uploaded');
      this.#media = 'memory-only';
      return new CountingSink();
    }
    this.#media = 'sealed';
    const db = this.#db!;
    const retention = { retentionDays: config.storage.retentionDays, quotaBytes: config.storage.quotaMiB * 2 ** 20, reserveBytes: config.storage.reserveMiB * 2 ** 20 };
    this.#retention = retention;
    const store = ObjectStore.open({ db, dataDir: config.dataDir, logger, retention });
    this.#store = store;
    // camveil removes an object's row before its file, so a row whose file is gone at start was made by
    // something outside camveil (a person, a failing disk): the household is told (store-corrupt).
    const missing = store.lastRecovery?.missingFiles ?? 0;
    if (missing > 0) {
      const incident = { reason: 'store-corrupt' as const, detail: `${missing} stored object(s) the index lists were missing from disk; their index rows were dropped` };
      this.#startIncidents.push(incident);
      this.bus.emit('incident', incident);
    }
    this.#stopRetention = startRetentionTimer(store, retention, this.#o.retentionIntervalMs ?? HOUR, logger, (report) => {
      this.#lastRetention = report;
      this.#expireHeldUploads(report.lastRunAt);
    });
    let uploads: UploadQueue | undefined;
    let stage: ((item: { objectId: string; path: string; bytes: number; kind: string }) => Promise<void>) | undefined;
    const cloud = remoteStoreFor(config, this.pseudonymise('hub', config.hub.id));
    if (cloud !== undefined) {
      this.#zone = cloud.zone;
      const outbox = new Outbox(db);
      const staging = path.join(config.dataDir, 'outbox');
      sweepStaging(staging, outbox, logger);
      const uploader = new Uploader({
        outbox,
        gate: this.#gate!,
        remote: cloud.remote,
        logger,
        onOutcome: (r) => {
          // A staged link has done its work once the object is uploaded or refused for good.
          if (r.result === 'uploaded' || r.result === 'rejected') void unlink(path.join(staging, `${r.objectId}.age`)).catch(() => undefined);
          this.bus.emit('upload.result', { objectId: r.objectId, kind: r.kind, bytes: r.bytes, ms: r.ms, result: r.result, ...(r.code === undefined ? {} : { code: r.code }) });
        },
      });
      uploader.start();
      this.#startDeletionRequests(db, cloud.remote);
      this.#outbox = outbox;
      this.#uploader = uploader;
      stage = async (item) => {
        // Nothing is queued in local-only mode; a queue from before a withdrawal was destroyed on entry.
        if (this.#consent?.mode.mode !== 'cloud') return;
        // The outbox holds a hard link to the stored file: destroying a queued upload removes the link,
        // and retention of the local copy does not pull a file from under an upload in progress.
        const staged = path.join(staging, `${item.objectId}.age`);
        await mkdir(staging, { recursive: true, mode: 0o700 })
          .then(() => link(item.path, staged))
          .then(() => {
            if (this.#consent?.mode.mode !== 'cloud') return unlink(staged);
            outbox.enqueue({ ...item, path: staged });
            uploader.kick();
          })
          .catch((error: unknown) => logger.error({ err: error, object: item.objectId }, 'could not queue an object for upload'));
      };
      const queue = stage;
      // Clips, snapshots and event records: queued in the transaction that stores them (a kill cannot part the two).
      const staged = new StagedUploads({ outbox, staging, mayQueue: () => this.#consent?.mode.mode === 'cloud', queued: () => uploader.kick(), logger });
      uploads = { enqueue: (item) => void queue(item), prepare: (item) => staged.prepare(item) };
    }
    // Face albums are sealed to the same household recipients, stored and queued the same way.
    const publisher = new SealedPublisher({ recipients: () => household.recipients, writer: store, ...(uploads === undefined ? {} : { uploads }) });
    this.#albums = new FaceAlbums({
      db,
      bus: this.bus,
      logger,
      hub: this.#keys!,
      publisher,
      store,
      people: this.#enrolment!,
      gate: this.#gate!,
      ...(this.#outbox === undefined ? {} : { outbox: this.#outbox }),
      flushDeletions: () => this.#flushDeletions?.(),
      cameraPseudonym: (id) => this.pseudonymise('cam', id),
      policyVersion: config.privacy.policyVersion,
      settings: {
        embeddings: config.faceRecognition.albumEmbeddings,
        maxSightings: config.faceRecognition.albumMaxSightings,
        intervalMs: config.faceRecognition.albumIntervalSeconds * 1000,
      },
      retentionDays: () => this.#o.config.storage.retentionDays,
      audit: this.#audit!,
    });
    return new SealedMediaSink({
      publisher,
      events: store,
      cameraPseudonym: (id) => this.pseudonymise('cam', id),
      policyVersion: () => config.privacy.policyVersion,
      logger,
      mayRecord: (cameraId) => this.#gate!.mayRecordLocally(cameraId),
      onRefused: (info) => this.bus.emit('media.refused', info),
      onStored: (info) => this.bus.emit('object.stored', info),
    });
  }

  /** Deletion requests (from `camveil data delete`) are retried until the cloud confirms, local-only or not. */
  #startDeletionRequests(db: Database.Database, remote: RemoteObjectStore): void {
    const { logger } = this.#o;
    const requests = new DeletionRequests(db);
    const flush = () => {
      if (requests.pending().length === 0) return;
      requests
        .flush(remote)
        .then((r) => logger.info(r, 'cloud deletion requests'))
        .catch((error: unknown) => logger.warn({ err: error }, 'cloud deletion requests failed; will retry'));
    };
    flush();
    this.#flushDeletions = flush;
    const timer = setInterval(flush, 5 * 60_000);
    timer.unref();
    this.#stopDeletions = () => clearInterval(timer);
  }

  /**
   * The MQTT control plane: requests in (verified, signature where the command widens data flow),
   * retained availability and state out, alerts sealed to the household and its paired phones. The client
   * reconnects by itself; a broker that is down does not stop the hub.
   */
  async #startControl(): Promise<void> {
    const { config, logger } = this.#o;
    const m = config.mqtt;
    const keys = this.#keys;
    if (m === undefined || keys === undefined || this.#db === undefined || this.#consent === undefined || this.#ledger === undefined || this.#audit === undefined) return;
    if (m.embeddedBroker) {
      const url = new URL(m.url);
      this.#broker = await startEmbeddedBroker(Number(url.port || 1883), url.hostname);
    }
    const options: IClientOptions = { ...connectOptions(m.baseTopic, config.hub.id), reconnectPeriod: 2000, connectTimeout: 10_000 };
    if (m.caFile !== undefined) options.ca = readFileSync(m.caFile);
    if (m.certFile !== undefined) options.cert = readFileSync(m.certFile);
    if (m.keyFile !== undefined) options.key = readFileSync(m.keyFile);
    if (m.username !== undefined) options.username = m.username;
    if (m.passwordFile !== undefined) options.password = readPasswordFile(m.passwordFile, 'mqtt.passwordFile');
    options.protocolVersion = await brokerProtocol(m.url, options);
    this.#mqttProtocol = options.protocolVersion;
    logger.info({ protocolVersion: options.protocolVersion }, 'mqtt: protocol');
    const client = mqtt.connect(m.url, options);
    this.#mqtt = client;
    client.on('error', (error) => logger.warn({ code: (error as NodeJS.ErrnoException).code }, 'mqtt: connection problem; retrying'));
    const registry = new KeyRegistry(this.#db);
    // MQTT API version 2: replies, events and state are signed with the hub key the app pins at pairing;
    // events and the full state are sealed to the household and the paired phones.
    const recipients = (): string[] => [...new Set([...(config.household?.recipients ?? []), ...registry.activeRecipients()])];
    const control = new ControlPlane({
      client,
      baseTopic: m.baseTopic,
      hubId: config.hub.id,
      registry,
      audit: this.#audit,
      hub: { signingKey: keys.signingKey, signingPublicKey: keys.signingPublicKey, recipient: keys.recipient, identity: keys.identity },
      recipients,
      getHealth: () => this.#cameraHealth(),
      handlers: {
        ...(this.#cameraRegistry === undefined || this.#keys === undefined
          ? {}
          : cameraCommands({
              registry: this.#cameraRegistry,
              hubIdentity: this.#keys.identity,
              configCameraIds: () => this.#fileCameraIds,
              apply: (change) => this.#applyCameraChange(change),
            })),
        ...(this.#enrolment === undefined || this.#keys === undefined
          ? {}
          : faceCommands({ people: () => this.enrolment, registry, mayEnrol: () => this.enrolmentDecision(), hubId: config.hub.id })),
        ...hubCommands({
        consent: this.#consent,
        ledger: this.#ledger,
        policyInForce: config.privacy.policyVersion,
        cameras: () => cameraSummaries(this.#o.config.cameras, this.#pipelines.map((p) => p.status()), this.#gate!),
        getConfig: () => settingsOf(this.#o.config),
        applyConfig: (patch) => this.#applySettings(patch),
        dataRights: () => ({
          db: this.#db!,
          config: this.#o.config,
          audit: this.#audit!,
          exportTrailer: () => this.#auditAnchor!.exportTrailer(),
          ledger: this.#ledger!,
          pseudonymise: (k, v) => this.pseudonymise(k, v),
          ...(this.#store === undefined ? {} : { store: this.#store }),
          ...(this.#enrolment === undefined ? {} : { people: this.#enrolment }),
        }),
      }),
      },
      logger,
      getState: () => this.state(),
      onRefused: (code) => this.#incidentMonitor.refused(code),
    });
    this.#control = control;
    const publishState = () => {
      if (!client.connected) return;
      void control.publishState().catch((error: unknown) => logger.warn({ err: error }, 'mqtt: state not published'));
      void ha?.mode(this.#consent?.mode.mode ?? 'local-only');
    };
    const ha = config.homeAssistant.discovery
      ? new HomeAssistantBridge({ baseTopic: m.baseTopic, hubId: config.hub.id, prefix: config.homeAssistant.prefix, cameras: config.cameras.filter((c) => c.enabled), logger })
      : undefined;
    this.#ha = ha;
    client.once('connect', () => {
      control
        .start()
        .then(publishState)
        .then(() => ha?.start(client))
        .catch((error: unknown) => logger.error({ err: error }, 'mqtt: control plane did not start'));
    });
    const alert = (cameraId: string, fields: { type: AlertKind; at: number; reason?: string; person?: string; sighting?: string; event?: string }) => {
      // Every alert asks the gate: motion and camera-offline alerts carry no biometric data; face alerts
      // follow the face-recognition rules for that camera.
      if (this.#gate?.ask({ kind: 'alert', alertKind: fields.type }, cameraId).allowed !== true) return;
      const event = { ...fields, camera: this.pseudonymise('cam', cameraId) };
      if (!client.connected) return;
      void control.publishEvent(event).catch((error: unknown) => logger.warn({ err: error }, 'mqtt: event not published'));
    };
    // Security incidents are told to the household (sealed, signed, at most one per reason a minute). One
    // the broker cannot take now (disconnected, or the publish fails) is kept in the database, sealed to the
    // hub key, the newest 100 at most, and told when the connection is back (also after a restart).
    const incidents = new IncidentLimiter();
    const pending = new PendingIncidents({ db: this.#db, hub: keys });
    const flushIncidents = (): void =>
      void pending
        .drain(
          async (event) => client.connected && (await control.publishEvent(event)),
          (error) => logger.warn({ err: error }, 'a kept security event no longer opens; dropped'),
        )
        .catch((error: unknown) => logger.warn({ err: error }, 'mqtt: kept security events not published; will retry on reconnect'));
    const keepIncident = (event: SecurityEvent): Promise<void> =>
      pending.add(event).then(
        (dropped) => {
          if (dropped > 0) logger.warn({ dropped }, 'the oldest untold security events were dropped (at most 100 are kept)');
        },
        (error: unknown) => logger.error({ err: error }, 'security event could not be kept'),
      );
    const tell = (event: SecurityEvent): void => {
      // Kept ones go first, so the household hears of incidents in the order they happened.
      if (!client.connected || pending.count() > 0) {
        void keepIncident(event).then(() => (client.connected ? flushIncidents() : undefined));
        return;
      }
      void control
        .publishEvent(event)
        .then((sent) => (sent ? undefined : keepIncident(event)))
        .catch((error: unknown) => {
          logger.warn({ err: error }, 'mqtt: security event not published; kept for the next connection');
          return keepIncident(event);
        });
    };
    client.on('connect', flushIncidents);
    // Those found while starting (before there was a connection to tell them on) are kept at once.
    for (const e of this.#startIncidents.splice(0)) {
      const event = incidents.admit({ reason: e.reason, ...(e.detail === undefined ? {} : { detail: e.detail }), ...(e.cameraId === undefined ? {} : { camera: this.pseudonymise('cam', e.cameraId) }) }, Date.now(), monotonicMs());
      if (event !== undefined) tell(event);
    }
    const cover = m.coverTraffic.enabled
      ? new CoverTraffic({
          perMinute: m.coverTraffic.perMinute,
          publish: async () => (client.connected ? control.publishEvent({ type: 'cover', at: Date.now() }) : false),
          onError: (error) => logger.warn({ err: error }, 'mqtt: cover event not published'),
        })
      : undefined;
    cover?.start();
    const timer = setInterval(publishState, 10_000);
    timer.unref();
    // Every reconnect after the first: the broker may have lost the retained state (a restart without
    // persistence), and the app should not wait for the next tick to see the hub again.
    let connectedBefore = false;
    const onConnect = (): void => {
      if (connectedBefore) publishState();
      connectedBefore = true;
    };
    client.on('connect', onConnect);
    const offs = [
      () => void client.off('connect', onConnect),
      () => void client.off('connect', flushIncidents),
      this.bus.on('mode.changed', publishState),
      this.bus.on('camera.state', (e) => {
        publishState();
        if (e.health === 'failed' || e.health === 'reconnecting') alert(e.cameraId, { type: 'camera-offline', at: Date.now(), reason: e.error?.code ?? e.health });
      }),
      this.bus.on('motion.start', (e) => {
        alert(e.cameraId, { type: 'motion', at: e.at });
        void ha?.motion(e.cameraId, true);
      }),
      this.bus.on('motion.end', (e) => void ha?.motion(e.cameraId, false)),
      // The person id is itself a random id; the name stays sealed on the hub and in the app.
      // The sighting id lets the app answer "this is X" / "this is not X" (faces/correct).
      this.bus.on('face.known', (e) => alert(e.cameraId, { type: 'known-face', at: e.at, person: e.personId, sighting: e.sightingId, ...(e.eventId === undefined ? {} : { event: e.eventId }) })),
      this.bus.on('face.unknown', (e) => alert(e.cameraId, { type: 'unknown-face', at: e.at, sighting: e.sightingId, ...(e.eventId === undefined ? {} : { event: e.eventId }) })),
      this.bus.on('incident', (e) => {
        const event = incidents.admit({ reason: e.reason, ...(e.detail === undefined ? {} : { detail: e.detail }), ...(e.cameraId === undefined ? {} : { camera: this.pseudonymise('cam', e.cameraId) }) }, Date.now(), monotonicMs());
        if (event !== undefined) tell(event);
      }),
    ];
    this.#stopControl = () => {
      cover?.stop();
      clearInterval(timer);
      offs.forEach((off) => off());
    };
  }

  /**
   * The retention sweep's part for the upload queue an unsigned stop holds: held uploads queued longer ago
   * than `storage.retentionDays` are deleted, audited (policy/withdrawal.ts `heldUploadCutoff`).
   */
  #expireHeldUploads(at: number): void {
    if (this.#outbox === undefined || this.#ledger === undefined) return;
    try {
      const cutoff = heldUploadCutoff(this.#ledger.records(), this.#o.config.storage.retentionDays, at);
      if (cutoff === undefined) return;
      const expired = expireHeldUploads(this.#outbox, cutoff);
      if (expired.length === 0) return;
      this.#audit?.append('deletion', { scope: 'retention', count: expired.length, reason: 'held-upload-retention', objectIds: expired.slice(0, 256) });
      this.#o.logger.info({ deleted: expired.length }, 'held uploads past storage retention deleted');
    } catch (error) {
      // An unreadable ledger holds nothing (and deletes nothing); a staged file left behind goes with the next start's staging sweep.
      this.#o.logger.warn({ err: error }, 'held upload retention failed; will retry');
    }
  }

  /** Each running camera's health under its pseudonym: the only per-camera fact the clear state carries. */
  #cameraHealth(): HubHealth['cameras'] {
    const health: HubHealth['cameras'] = {};
    for (const status of this.#pipelines.map((p) => p.status())) {
      health[this.pseudonymise('cam', status.cameraId)] = status.health === 'streaming' || status.health === 'failed' ? status.health : 'reconnecting';
    }
    return health;
  }

  /** Reads the password when it is needed (never kept) and resolves the camera's stream URLs. */
  async #resolve(camera: CameraConfig): Promise<IngestSource> {
    // An app-managed camera's password is stored sealed to the hub key and opened only now.
    const password =
      this.#cameraRegistry?.has(camera.id) === true && !this.#fileCameraIds.has(camera.id)
        ? await this.#cameraRegistry.password(camera.id)
        : resolveCameraPassword(camera, this.#o.env ?? process.env);
    const resolved = await resolveCameraSource(camera, password, { logger: this.#o.logger });
    if (resolved.facts !== undefined) {
      const device = describeFactsForLog(resolved.facts, (kind, value) => this.pseudonymise(kind, value));
      this.#o.logger.info({ camera: camera.id, device }, 'camera identified');
    }
    const capability = this.#faceCapability(resolved.facts, resolved.mainSize);
    const entry = this.#faceCameras.get(camera.id);
    if (entry !== undefined && entry.faceCapable !== capability.capable) {
      entry.faceCapable = capability.capable;
      this.#o.logger.info({ camera: camera.id, faceCapable: capability.capable, reason: capability.reason }, 'face capability');
    }
    const kind = resolved.kind === 'file' ? 'file' : 'rtsp';
    return {
      main: { url: resolved.main, kind },
      ...(resolved.sub === undefined ? {} : { sub: { url: resolved.sub, kind } }),
    };
  }
}

/** Removes staged upload links whose upload is over (uploaded, failed, destroyed): left by a crash or an older run. */
function sweepStaging(staging: string, outbox: Outbox, logger: Logger): void {
  let names: string[];
  try {
    names = readdirSync(staging);
  } catch {
    return;
  }
  let removed = 0;
  for (const name of names) {
    const state = outbox.get(name.replace(/\.age$/, ''))?.state;
    if (state === 'queued' || state === 'uploading') continue;
    try {
      unlinkSync(path.join(staging, name));
      removed += 1;
    } catch {
      // already gone
    }
  }
  if (removed > 0) logger.info({ removed }, 'removed staged upload links whose upload is over');
}

/**
 * MQTT 5 where the broker supports it, 3.1.1 otherwise: one short trial connection with version 5. A broker
 * that refuses the version (aedes, older brokers) or cannot be reached now gets 3.1.1, which every broker
 * speaks; the real client then reconnects on its own.
 */
async function brokerProtocol(url: string, options: IClientOptions): Promise<4 | 5> {
  try {
    // The trial connection carries no last will: it must not publish "offline" when it ends.
    const trial: IClientOptions = { ...options, clientId: `${options.clientId ?? 'camveil'}-probe`, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000 };
    delete trial.will;
    const probe = await mqtt.connectAsync(url, trial);
    await probe.endAsync(true);
    return 5;
  } catch {
    return 4;
  }
}

/** How long a stop waits for each network peer (broker) before going on without it. */
const STOP_PEER_MS = 2_000;

/** Waits for `work` at most `ms`; true when it settled (fulfilled or rejected) in time. */
async function withinMs(work: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (work === undefined) return true;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
