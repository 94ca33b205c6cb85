import { readFileSync } from 'node:fs';
import type Database from 'better-sqlite3';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { CameraStatus } from '../cameras/camera-pipeline.js';
import { monotonicMs } from '../clock.js';
import type { Config } from '../config/schema.js';
import { readPasswordFile } from '../config/secrets.js';
import type { HubKeys } from '../crypto/hub-keys.js';
import type { EnrolmentStore } from '../analysis/faces/enrolment.js';
import type { CamveilEvents, EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { HubPolicy } from '../policy/open-policy.js';
import type { AlertKind, ObjectLabel } from '../policy/vocabulary.js';
import type { DataRightsDeps } from '../rights/data-rights.js';
import type { ObjectStore } from '../store/object-store.js';
import { passesOnlyFor } from './alert-rules.js';
import { brokerProtocol } from './broker-protocol.js';
import { cameraCommands, type CameraCommandDeps } from './camera-commands.js';
import { onlyForOf, trackedLabels } from './camera-objects.js';
import type { CameraRegistry } from './camera-registry.js';
import { DetectionCounts, type DetectionCountsState } from './detection-counts.js';
import { ControlPlane } from './dispatcher.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
import { faceCommands } from './face-commands.js';
import { HomeAssistantBridge, type HomeAssistantCamera } from './ha-discovery.js';
import { hubCommands } from './hub-commands.js';
import type { HubHealth } from './hub-message.js';
import { IncidentMonitor } from './incident-monitor.js';
import { KeyRegistry } from './key-registry.js';
import { PendingIncidents } from './pending-incidents.js';
import { RecentIds } from './recent-ids.js';
import { CoverTraffic, IncidentLimiter, type SecurityEvent } from './sealed-events.js';
import { cameraSummaries, settingsOf, type HubSettings, type SettingsPatch } from './settings.js';
import { connectOptions } from './topics.js';

export interface ControlServiceOptions {
  /** The configuration now (cameras, settings, MQTT). */
  config: () => Config;
  /** The configuration file's camera ids (not the app's to change). */
  fileCameraIds: () => ReadonlySet<string>;
  db: Database.Database;
  keys: HubKeys;
  policy: HubPolicy;
  bus: EventBus;
  logger: Logger;
  cameraRegistry: CameraRegistry;
  enrolment: () => EnrolmentStore;
  /** Each running camera's status. */
  statuses: () => CameraStatus[];
  applyCamera: CameraCommandDeps['apply'];
  applySettings: (patch: SettingsPatch) => Promise<HubSettings>;
  /** The encrypted object store (data rights export and delete it); undefined without household recipients. */
  store: () => ObjectStore | undefined;
  /** The hub's keyed pseudonym of a value (data rights exports name the hub and cameras by them). */
  pseudonymise: (kind: string, value: string) => string;
  /** The hub's state (sealed to the household in the retained state message). */
  state: () => object;
  cameraPseudonym: (cameraId: string) => string;
  /** Incidents found before there was a connection: told once connected (the array is emptied). */
  startIncidents: Array<CamveilEvents['incident']>;
}

/**
 * The MQTT side of the hub: the embedded broker when configured, the client (MQTT 5 where the broker
 * speaks it), the control plane with its commands, Home Assistant discovery over the cameras in force,
 * the state, alerts routed through the gate and each camera's `alerts.onlyFor`, the detection counts of
 * the sealed state, and security incidents told to the household (kept while the broker cannot take them,
 * rate-limited, with cover traffic when configured).
 */
export class ControlService {
  readonly #o: ControlServiceOptions;
  #broker: EmbeddedBroker | undefined;
  #mqtt: MqttClient | undefined;
  #control: ControlPlane | undefined;
  #ha: HomeAssistantBridge | undefined;
  #mqttProtocol: 4 | 5 | undefined;
  #stopControl: (() => void) | undefined;
  #incidentMonitor: IncidentMonitor;
  readonly #detections: DetectionCounts;

  constructor(options: ControlServiceOptions) {
    this.#o = options;
    // Counts refused requests: bursts of bad signatures or pairing proofs are incidents.
    this.#incidentMonitor = new IncidentMonitor({ bus: options.bus });
    this.#detections = new DetectionCounts({ bus: options.bus, cameraPseudonym: options.cameraPseudonym });
  }

  /** Confirmed objects per camera pseudonym and label since the start (the sealed state's `detections`); undefined before start. */
  detections(): DetectionCountsState | undefined {
    return this.#detections.snapshot();
  }

  /** What `data/export` and `data/delete` work on: the hub's database, store, ledger, audit log and enrolled people. */
  #dataRights(): DataRightsDeps {
    const { db, policy } = this.#o;
    const store = this.#o.store();
    return {
      db,
      config: this.#o.config(),
      audit: policy.audit,
      exportTrailer: () => policy.anchored.exportTrailer(),
      ledger: policy.ledger,
      pseudonymise: this.#o.pseudonymise,
      mayAskCloud: () => policy.gate.mayQueueUploads().allowed,
      ...(store === undefined ? {} : { store }),
      people: this.#o.enrolment(),
    };
  }

  /** The MQTT protocol in use with the broker; undefined before the connection (or without MQTT). */
  get protocolVersion(): 4 | 5 | undefined {
    return this.#mqttProtocol;
  }

  /** Stops listening, says goodbye within a few seconds each, and closes the embedded broker. */
  async stop(): Promise<void> {
    this.#detections.stop();
    this.#stopControl?.();
    // The broker may be gone: a stop must not wait for it (systemd would SIGKILL the hub). The clips are
    // already stored; saying goodbye on MQTT gets a few seconds, then the connection is dropped.
    await withinMs(this.#ha?.stop(), STOP_PEER_MS);
    await withinMs(this.#control?.stop(), STOP_PEER_MS);
    const ended = await withinMs(this.#mqtt?.endAsync(), STOP_PEER_MS);
    if (!ended) await withinMs(this.#mqtt?.endAsync(true), STOP_PEER_MS);
    await this.#broker?.close();
  }

  /**
   * The MQTT control plane: requests in (verified, signature where the command widens data flow),
   * retained availability and state out, alerts sealed to the household and its paired phones. The client
   * reconnects by itself; a broker that is down does not stop the hub.
   */
  async start(): Promise<void> {
    const { logger, keys, policy, bus } = this.#o;
    // The state reports them with or without MQTT (`camveil run`'s state).
    this.#detections.start();
    const config = this.#o.config();
    const m = config.mqtt;
    if (m === undefined) return;
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
    const registry = new KeyRegistry(this.#o.db);
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
        ...cameraCommands({
          registry: this.#o.cameraRegistry,
          hubIdentity: keys.identity,
          configCameraIds: this.#o.fileCameraIds,
          apply: this.#o.applyCamera,
        }),
        ...faceCommands({ people: this.#o.enrolment, registry, mayEnrol: () => policy.gate.mayEnrolFaces(), hubId: config.hub.id }),
        ...hubCommands({
        consent: policy.consent,
        policyInForce: config.privacy.policyVersion,
        cameras: () => cameraSummaries(this.#o.config().cameras, this.#o.statuses(), policy.gate),
        getConfig: () => settingsOf(this.#o.config()),
        applyConfig: this.#o.applySettings,
        dataRights: () => this.#dataRights(),
      }),
      },
      logger,
      getState: this.#o.state,
      onRefused: (code) => this.#incidentMonitor.refused(code),
    });
    this.#control = control;
    const publishState = () => {
      if (!client.connected) return;
      void control.publishState().catch((error: unknown) => logger.warn({ err: error }, 'mqtt: state not published'));
      void ha?.mode(policy.consent.mode.mode);
    };
    const ha = config.homeAssistant.discovery
      ? new HomeAssistantBridge({ baseTopic: m.baseTopic, hubId: config.hub.id, prefix: config.homeAssistant.prefix, cameras: () => this.#haCameras(), logger })
      : undefined;
    this.#ha = ha;
    client.once('connect', () => {
      control
        .start()
        .then(publishState)
        .then(() => ha?.start(client))
        .catch((error: unknown) => logger.error({ err: error }, 'mqtt: control plane did not start'));
    });
    const alert = (cameraId: string, fields: { type: AlertKind; at: number; reason?: string; person?: string; sighting?: string; event?: string; label?: ObjectLabel; score?: number }) => {
      // The household may want alerts only for some objects on this camera (read now: cameras change at run time).
      if (!passesOnlyFor(onlyForOf(this.#o.config().cameras.find((c) => c.id === cameraId)), fields.type, fields.label)) return;
      // Every alert asks the gate: motion, object and camera-offline alerts carry no biometric data; face
      // alerts follow the face-recognition rules for that camera.
      if (!policy.gate.ask({ kind: 'alert', alertKind: fields.type }, cameraId).allowed) return;
      const event = { ...fields, camera: this.#o.cameraPseudonym(cameraId) };
      if (!client.connected) return;
      void control.publishEvent(event).catch((error: unknown) => logger.warn({ err: error }, 'mqtt: event not published'));
    };
    // Security incidents are told to the household (sealed, signed, at most one per reason a minute). One
    // the broker cannot take now (disconnected, or the publish fails) is kept in the database, sealed to the
    // hub key, the newest 100 at most, and told when the connection is back (also after a restart).
    const incidents = new IncidentLimiter();
    const pending = new PendingIncidents({ db: this.#o.db, hub: keys });
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
    for (const e of this.#o.startIncidents.splice(0)) {
      const event = incidents.admit({ reason: e.reason, ...(e.detail === undefined ? {} : { detail: e.detail }), ...(e.cameraId === undefined ? {} : { camera: this.#o.cameraPseudonym(e.cameraId) }) }, Date.now(), monotonicMs());
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
    // The bus tells each object once per track; should it tell one twice, the phones still hear it once.
    const alertedTracks = new RecentIds(ALERTED_TRACKS);
    const offs = [
      () => void client.off('connect', onConnect),
      () => void client.off('connect', flushIncidents),
      bus.on('mode.changed', publishState),
      // A camera added, changed or removed over MQTT: Home Assistant is told at once, and so is the app.
      bus.on('cameras.changed', () => {
        publishState();
        void ha?.announce();
      }),
      bus.on('camera.state', (e) => {
        publishState();
        if (e.health === 'failed' || e.health === 'reconnecting') alert(e.cameraId, { type: 'camera-offline', at: Date.now(), reason: e.error?.code ?? e.health });
        // A camera that does not stream sees nothing: its object sensors go OFF.
        if (e.health === 'failed' || e.health === 'reconnecting' || e.health === 'stopped') void ha?.cameraBlind(e.cameraId);
      }),
      bus.on('motion.start', (e) => {
        alert(e.cameraId, { type: 'motion', at: e.at });
        void ha?.motion(e.cameraId, true);
      }),
      bus.on('motion.end', (e) => void ha?.motion(e.cameraId, false)),
      bus.on('object.confirmed', (e) => {
        void ha?.objectConfirmed(e.cameraId, e.label, e.trackId);
        if (!alertedTracks.admit(`${e.cameraId}\n${e.trackId}`)) return;
        alert(e.cameraId, { type: 'object', label: e.label, score: e.score, at: e.at, ...(e.eventId === undefined ? {} : { event: e.eventId }) });
      }),
      bus.on('object.ended', (e) => void ha?.objectEnded(e.cameraId, e.label, e.trackId)),
      // The person id is itself a random id; the name stays sealed on the hub and in the app.
      // The sighting id lets the app answer "this is X" / "this is not X" (faces/correct).
      bus.on('face.known', (e) => alert(e.cameraId, { type: 'known-face', at: e.at, person: e.personId, sighting: e.sightingId, ...(e.eventId === undefined ? {} : { event: e.eventId }) })),
      bus.on('face.unknown', (e) => alert(e.cameraId, { type: 'unknown-face', at: e.at, sighting: e.sightingId, ...(e.eventId === undefined ? {} : { event: e.eventId }) })),
      bus.on('incident', (e) => {
        const event = incidents.admit({ reason: e.reason, ...(e.detail === undefined ? {} : { detail: e.detail }), ...(e.cameraId === undefined ? {} : { camera: this.#o.cameraPseudonym(e.cameraId) }) }, Date.now(), monotonicMs());
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
   * The cameras Home Assistant is told of: the enabled ones, each with the object labels it tracks now
   * (none where the region rules refuse object detection: the sensors would never turn on).
   */
  #haCameras(): HomeAssistantCamera[] {
    const gate = this.#o.policy.gate;
    return this.#o
      .config()
      .cameras.filter((c) => c.enabled)
      .map((c) => ({ id: c.id, name: c.name, objectLabels: gate.mayDetectObjects(c.id).allowed ? trackedLabels(c) : [] }));
  }

  /** Each running camera's health under its pseudonym: the only per-camera fact the clear state carries. */
  #cameraHealth(): HubHealth['cameras'] {
    const health: HubHealth['cameras'] = {};
    for (const status of this.#o.statuses()) {
      health[this.#o.cameraPseudonym(status.cameraId)] = status.health === 'streaming' || status.health === 'failed' ? status.health : 'reconnecting';
    }
    return health;
  }


}

/** Track ids remembered so that an object is alerted at most once even if its confirmation were told twice. */
const ALERTED_TRACKS = 1024;

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
