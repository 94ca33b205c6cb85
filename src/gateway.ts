import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type Database from 'better-sqlite3';
import type { EnrolmentStore } from './analysis/faces/enrolment.js';
import type { FaceStage, FaceStageStats } from './analysis/faces/face-stage.js';
import type { FrameAnalyser } from './analysis/frame-analyser.js';
import type { SignedAuditHead } from './audit/audit-anchor.js';
import type { BackoffOptions } from './cameras/backoff.js';
import { CameraPipeline, type CameraStatus } from './cameras/camera-pipeline.js';
import { openCameraList } from './cameras/camera-list.js';
import { describeFactsForLog } from './cameras/device-facts.js';
import { ffmpegMajorVersion, findFfmpeg } from './cameras/ffmpeg-binary.js';
import type { IngestSource } from './cameras/ingest.js';
import { resolveCameraSource } from './cameras/source.js';
import { monotonicMs } from './clock.js';
import type { LiveConfig } from './config/live-config.js';
import type { CameraConfig, Config } from './config/schema.js';
import { looseSecretFiles } from './config/secret-files.js';
import { readPasswordFile, resolveCameraPassword } from './config/secrets.js';
import { cameraCommands } from './control/camera-commands.js';
import type { CameraRegistry } from './control/camera-registry.js';
import { ControlPlane } from './control/dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './control/embedded-broker.js';
import { faceCommands } from './control/face-commands.js';
import { HomeAssistantBridge } from './control/ha-discovery.js';
import { hubCommands } from './control/hub-commands.js';
import type { HubHealth } from './control/hub-message.js';
import { auditIncidents, IncidentMonitor } from './control/incident-monitor.js';
import { KeyRegistry } from './control/key-registry.js';
import { PendingIncidents } from './control/pending-incidents.js';
import { CoverTraffic, IncidentLimiter, type SecurityEvent } from './control/sealed-events.js';
import { applySettingsPatch, cameraSummaries, settingsOf, type HubSettings, type SettingsPatch } from './control/settings.js';
import { connectOptions } from './control/topics.js';
import { loadOrCreateHubKeys, type HubKeys } from './crypto/hub-keys.js';
import { pseudonym } from './crypto/pseudonym.js';
import type { ErrorCode } from './errors.js';
import { EventBus, type CamveilEvents } from './events.js';
import { FaceAlbums } from './faces/face-albums.js';
import { FacesService } from './faces/faces-service.js';
import type { Logger } from './log.js';
import type { ConsentService } from './policy/consent-service.js';
import { openPolicy, type HubPolicy } from './policy/open-policy.js';
import type { AlertKind } from './policy/vocabulary.js';
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
  readonly #pipelines: CameraPipeline[] = [];
  #ffmpeg: GatewayState['ffmpeg'] | undefined;
  #keys: HubKeys | undefined;
  #db: Database.Database | undefined;
  /** The configuration in force (the file's, app-managed cameras, `config/set`); the caller's options are never written to. */
  #live: LiveConfig | undefined;
  #policy: HubPolicy | undefined;
  #mediaService: MediaService | undefined;
  #uplink: UplinkService | undefined;
  #faces: FacesService | undefined;
  #broker: EmbeddedBroker | undefined;
  #mqtt: MqttClient | undefined;
  #control: ControlPlane | undefined;
  #stopControl: (() => void) | undefined;
  #makePipeline: ((camera: CameraConfig) => CameraPipeline) | undefined;
  #cameraRegistry: CameraRegistry | undefined;
  #mqttProtocol: 4 | 5 | undefined;
  #ha: HomeAssistantBridge | undefined;
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
    this.#cameraRegistry = registry;
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
    const sink = media.sink!;
    const stage = faces.stage!;
    this.#makePipeline = (camera) => {
      faces.bystanders.watch(camera.id, camera.bystanderBlurClips ? camera.analysis : undefined);
      return new CameraPipeline({
        camera,
        recording: live.current.recording,
        sink,
        bus: this.bus,
        logger,
        ffmpeg: binaries.ffmpeg,
        ffmpegMajor: major,
        resolveSource: () => this.#resolve(camera),
        analysers: [stage, ...(this.#o.analysers ?? [])],
        bystanderBoxes: stage.bystanderBoxes.bind(stage),
        ...(this.#o.backoff === undefined ? {} : { backoff: this.#o.backoff }),
        ...(this.#o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: this.#o.stallTimeoutMs }),
      });
    };
    for (const analyser of this.#o.analysers ?? []) await analyser.start();
    for (const camera of live.cameras()) {
      if (!camera.enabled) continue;
      const pipeline = this.#makePipeline(camera);
      this.#pipelines.push(pipeline);
      pipeline.start();
    }
    // After the cameras: the broker's trial connection (up to 3 s for an unreachable one) must not hold them up.
    await this.#startControl();
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

  /** Starts, restarts or stops an app-managed camera after `cameras/add|update|remove`. */
  async #applyCameraChange(change: { kind: 'added' | 'updated'; camera: CameraConfig } | { kind: 'removed'; cameraId: string }): Promise<void> {
    const live = this.#live!;
    const id = change.kind === 'removed' ? change.cameraId : change.camera.id;
    const i = this.#pipelines.findIndex((p) => p.cameraId === id);
    if (i >= 0) {
      await this.#pipelines[i]!.stop();
      this.#pipelines.splice(i, 1);
    }
    if (change.kind === 'removed') {
      live.removeCamera(id);
      this.#policy?.cameraFacts.forget(id);
      this.#o.logger.info({ camera: id }, 'camera removed by the app');
    } else {
      const camera = change.camera;
      live.putCamera(camera);
      if (camera.enabled && this.#makePipeline !== undefined) {
        const pipeline = this.#makePipeline(camera);
        this.#pipelines.push(pipeline);
        pipeline.start();
      }
      this.#o.logger.info({ camera: camera.id, change: change.kind }, `camera ${change.kind} by the app`);
    }
    this.bus.emit('cameras.changed', { cameraIds: live.cameras().map((c) => c.id) });
  }

  /**
   * Applies settings changed over MQTT (`config/set`: zones, masks, sensitivity, analysis fps, retention)
   * in memory. A camera whose settings changed is restarted: its motion detector reads them when built.
   */
  async #applySettings(patch: SettingsPatch): Promise<HubSettings> {
    const live = this.#live!;
    const next = applySettingsPatch(live.current, patch);
    live.replace(next);
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
    // Pending albums are sealed and queued now, while the store and the outbox are still open.
    await this.#faces?.stop();
    this.#mediaService?.stop();
    this.#policy?.consent.stop();
    this.#stopControl?.();
    this.#stopIncidentAudit?.();
    // The broker may be gone: a stop must not wait for it (systemd would SIGKILL the hub). The clips are
    // already stored; saying goodbye on MQTT gets a few seconds, then the connection is dropped.
    await withinMs(this.#ha?.stop(), STOP_PEER_MS);
    await withinMs(this.#control?.stop(), STOP_PEER_MS);
    const ended = await withinMs(this.#mqtt?.endAsync(), STOP_PEER_MS);
    if (!ended) await withinMs(this.#mqtt?.endAsync(true), STOP_PEER_MS);
    await this.#broker?.close();
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
      ...(this.#mqttProtocol === undefined ? {} : { mqtt: { protocolVersion: this.#mqttProtocol } }),
      ...(faces === undefined ? {} : { faces }),
      ...(this.#faces === undefined || this.#faces.bystanders.watchedCount === 0 ? {} : { clipBlur: this.#mediaService?.clipOutcomes() ?? { blurred: 0, unchanged: 0, withheld: 0 } }),
      policyVersion: config.privacy.policyVersion,
      // With each camera, what the gate allows on it now and why not (no personal data).
      cameras: this.#pipelines.map((p) => p.status()).map((status) => ({
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
   * The MQTT control plane: requests in (verified, signature where the command widens data flow),
   * retained availability and state out, alerts sealed to the household and its paired phones. The client
   * reconnects by itself; a broker that is down does not stop the hub.
   */
  async #startControl(): Promise<void> {
    const { logger } = this.#o;
    const live = this.#live!;
    const config = live.current;
    const m = config.mqtt;
    const keys = this.#keys;
    const policy = this.#policy;
    if (m === undefined || keys === undefined || this.#db === undefined || policy === undefined) return;
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
      audit: policy.audit,
      hub: { signingKey: keys.signingKey, signingPublicKey: keys.signingPublicKey, recipient: keys.recipient, identity: keys.identity },
      recipients,
      getHealth: () => this.#cameraHealth(),
      handlers: {
        ...(this.#cameraRegistry === undefined || this.#keys === undefined
          ? {}
          : cameraCommands({
              registry: this.#cameraRegistry,
              hubIdentity: this.#keys.identity,
              configCameraIds: () => live.fileCameraIds,
              apply: (change) => this.#applyCameraChange(change),
            })),
        ...(this.#faces?.enrolment === undefined || this.#keys === undefined
          ? {}
          : faceCommands({ people: () => this.enrolment, registry, mayEnrol: () => this.enrolmentDecision(), hubId: config.hub.id })),
        ...hubCommands({
        consent: policy.consent,
        policyInForce: config.privacy.policyVersion,
        cameras: () => cameraSummaries(live.cameras(), this.#pipelines.map((p) => p.status()), policy.gate),
        getConfig: () => settingsOf(live.current),
        applyConfig: (patch) => this.#applySettings(patch),
        dataRights: () => ({
          db: this.#db!,
          config: live.current,
          audit: policy.audit,
          exportTrailer: () => policy.anchored.exportTrailer(),
          ledger: policy.ledger,
          pseudonymise: (k, v) => this.pseudonymise(k, v),
          ...(this.#mediaService?.store === undefined ? {} : { store: this.#mediaService.store }),
          ...(this.#faces?.enrolment === undefined ? {} : { people: this.#faces.enrolment }),
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
      void ha?.mode(policy.consent.mode.mode);
    };
    const ha = config.homeAssistant.discovery
      ? new HomeAssistantBridge({ baseTopic: m.baseTopic, hubId: config.hub.id, prefix: config.homeAssistant.prefix, cameras: () => live.cameras().filter((c) => c.enabled), logger })
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
      if (!policy.gate.ask({ kind: 'alert', alertKind: fields.type }, cameraId).allowed) return;
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
      // A camera added, changed or removed over MQTT: Home Assistant is told at once, and so is the app.
      this.bus.on('cameras.changed', () => {
        publishState();
        void ha?.announce();
      }),
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
      this.#cameraRegistry?.has(camera.id) === true && this.#live?.fileCameraIds.has(camera.id) !== true
        ? await this.#cameraRegistry.password(camera.id)
        : resolveCameraPassword(camera, this.#o.env ?? process.env);
    const resolved = await resolveCameraSource(camera, password, { logger: this.#o.logger });
    if (resolved.facts !== undefined) {
      const device = describeFactsForLog(resolved.facts, (kind, value) => this.pseudonymise(kind, value));
      this.#o.logger.info({ camera: camera.id, device }, 'camera identified');
    }
    // What the camera said about itself is the gate's fact for it, for the service and the console alike.
    const seen = this.#policy?.cameraFacts.observe(camera.id, resolved.facts, resolved.mainSize);
    if (seen !== undefined && seen.before.capable !== seen.after.capable) {
      this.#o.logger.info({ camera: camera.id, faceCapable: seen.after.capable, reason: seen.after.reason }, 'face capability');
    }
    const kind = resolved.kind === 'file' ? 'file' : 'rtsp';
    return {
      main: { url: resolved.main, kind },
      ...(resolved.sub === undefined ? {} : { sub: { url: resolved.sub, kind } }),
    };
  }
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
