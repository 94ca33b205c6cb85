import type Database from 'better-sqlite3';
import type { EnrolmentStore } from './analysis/faces/enrolment.js';
import type { FaceStage } from './analysis/faces/face-stage.js';
import type { FrameAnalyser } from './analysis/frame-analyser.js';
import { ObjectAnalyser, type ObjectAnalyserStats } from './analysis/objects/object-analyser.js';
import { startIntegrityCheck } from './audit/start-integrity.js';
import type { BackoffOptions } from './cameras/backoff.js';
import { CameraManager } from './cameras/camera-manager.js';
import { openCameraList } from './cameras/camera-list.js';
import { ffmpegMajorVersion, findFfmpeg } from './cameras/ffmpeg-binary.js';
import type { LiveConfig } from './config/live-config.js';
import type { Config } from './config/schema.js';
import { ControlService } from './control/control-service.js';
import { loadOrCreateHubKeys, type HubKeys } from './crypto/hub-keys.js';
import { pseudonym } from './crypto/pseudonym.js';
import { EventBus, type CamveilEvents } from './events.js';
import { FacesService } from './faces/faces-service.js';
import type { AlbumPublishing } from './faces/open-face-albums.js';
import { hubState, type GatewayState } from './hub-state.js';
import type { Logger } from './log.js';
import type { ConsentService } from './policy/consent-service.js';
import type { PolicyGate } from './policy/gate.js';
import { openPolicy, type HubPolicy, type OpenPolicyOptions } from './policy/open-policy.js';
import { WithdrawalEnforcer } from './policy/withdrawal-enforcer.js';
import { MediaService } from './recording/media-service.js';
import type { MediaSink } from './recording/sink.js';
import { openDatabase } from './store/database.js';
import { UplinkService } from './uplink/uplink-service.js';

export type { GatewayState } from './hub-state.js';

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
  /** The region table lookup; tests give a region of their own (one that forbids object detection, say). */
  rulesFor?: OpenPolicyOptions['rulesFor'];
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
  #objects: ObjectAnalyser | undefined;
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
    // What every service is given: the hub's database, the configuration in force, the bus and the logger.
    const hub = { db, config, bus: this.bus, logger };
    const policy = openPolicy({
      ...hub,
      cameras: () => live.cameras(),
      signingKey: keys.signingKey,
      pseudonymise: (k, v) => this.pseudonymise(k, v),
      enforce: (change) => enforcer.enforce(change),
      // Someone who could not sign stopped a flow: the household is told (sealed `security` event).
      onUnsignedStop: (consent) => this.bus.emit('incident', { reason: 'unsigned-stop', detail: `${consent} stopped by an unsigned withdrawal; nothing deleted` }),
      ...(this.#o.rulesFor === undefined ? {} : { rulesFor: this.#o.rulesFor }),
    });
    this.#policy = policy;
    const enforcer = new WithdrawalEnforcer({ bus: this.bus, audit: policy.audit, logger, uploads: () => this.#uplink });
    this.#stopIncidentAudit = startIntegrityCheck({ bus: this.bus, anchored: policy.anchored, config: file, logger, cameraPseudonym: cam, found: this.#startIncidents });
    const faces = new FacesService({
      ...hub,
      cameraIds: () => live.enabledCameraIds(),
      hub: keys,
      audit: policy.audit,
      ledger: policy.ledger,
      gate: policy.gate,
      cameraPseudonym: cam,
      albumPublishing: (): AlbumPublishing => ({ store: media.store, publisher: media.publisher, outbox: up.outbox, flushDeletions: () => up.flushDeletions() }),
    });
    this.#faces = faces;
    const up = new UplinkService({ ...hub, gate: policy.gate, ledger: policy.ledger, audit: policy.audit, hubPseudonym: () => this.pseudonymise('hub', file.hub.id) });
    this.#uplink = up;
    up.start();
    const media = new MediaService({
      ...hub,
      gate: policy.gate,
      ffmpegPath: binaries.ffmpeg,
      cameraPseudonym: cam,
      uploads: () => up.queue,
      faces: () => faces.stage,
      bystanders: faces.bystanders,
      ...(this.#o.sink === undefined ? {} : { sink: this.#o.sink }),
      ...(this.#o.retentionIntervalMs === undefined ? {} : { retentionIntervalMs: this.#o.retentionIntervalMs }),
      onRetention: (report) => up.expireHeld(report.lastRunAt),
      // Found while opening the store: told to the household once MQTT connects, like the integrity check's.
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
    const objects = new ObjectAnalyser({
      gate: policy.gate,
      camera: (id) => live.cameras().find((c) => c.id === id),
      cameraIds: () => live.enabledCameraIds(),
      bus: this.bus,
      logger,
    });
    this.#objects = objects;
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
      objects,
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
      ...hub,
      fileCameraIds: () => live.fileCameraIds,
      keys,
      policy,
      cameraRegistry: registry,
      enrolment: () => this.enrolment,
      statuses: () => cameras.statuses(),
      applyCamera: (change) => cameras.apply(change),
      applySettings: (patch) => cameras.applySettings(patch),
      store: () => media.store,
      pseudonymise: (k, v) => this.pseudonymise(k, v),
      state: () => this.state(),
      cameraPseudonym: cam,
      startIncidents: this.#startIncidents,
    });
    // After the cameras: the broker's trial connection (up to 3 s for an unreachable one) must not hold them up.
    await this.#control.start();
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
    const policy = this.#policy;
    const open = this.#db?.open === true;
    return hubState({
      config,
      hub: this.#keys === undefined ? 'hub_unknown' : this.pseudonymise('hub', config.hub.id),
      ffmpeg: this.#ffmpeg,
      media: this.#mediaService?.media,
      mode: policy?.consent.mode,
      protocolVersion: this.#control?.protocolVersion,
      faces: this.#faces?.stats(),
      objects: this.#objectsState(),
      clipBlur: this.#faces === undefined || this.#faces.bystanders.watchedCount === 0 ? undefined : this.#mediaService?.clipOutcomes(),
      cameras: this.#cameras?.statuses() ?? [],
      gate: policy?.gate,
      storage: this.#mediaService?.storage(),
      uplink: open ? this.#uplink?.stats() : undefined,
      audit: policy !== undefined && open ? policy.anchored.signed(policy.audit.head()) : undefined,
      detections: this.#control?.detections(),
    });
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

  /** The judge: what the hub may do now on each camera, and why not (`mayEnrolFaces`, `mayRecogniseFaces`, …). */
  get gate(): PolicyGate {
    if (this.#policy === undefined) throw new Error('the gateway has not started');
    return this.#policy.gate;
  }

  /** The face stage's counters (calls, gated-out and dropped frames, whether models are loaded); undefined before start. */
  faceStats(): ReturnType<FaceStage['stats']> | undefined {
    return this.#faces?.stage?.stats();
  }

  #objectsState(): GatewayState['objects'] {
    const objects = this.#objects;
    if (objects === undefined) return undefined;
    const reason = objects.disabledReason;
    return { ...objects.stats(), ...(reason === undefined ? {} : { disabledReason: reason }) };
  }

  /** The objects analyser's counters (model calls, frames analysed and dropped, confirmed objects); undefined before start. */
  objectStats(): ObjectAnalyserStats | undefined {
    return this.#objects?.stats();
  }

  /** The hub's keyed pseudonym of a value (camera id, serial, hub id). */
  pseudonymise(kind: string, value: string): string {
    if (this.#keys === undefined) throw new Error('the gateway has not started');
    return pseudonym(this.#keys.pseudonymSecret, kind, value);
  }
}
