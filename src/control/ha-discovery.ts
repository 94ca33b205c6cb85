import { asCamveilError } from '../errors.js';
import type { ObjectLabel } from '../policy/vocabulary.js';
import type { ControlLogger } from './command.js';
import type { ControlClient } from './dispatcher.js';
import { ObjectPresence } from './object-presence.js';
import { assertNoSecrets } from './state-guard.js';
import { hubTopics } from './topics.js';

/**
 * Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery), opt-in
 * for a broker on the household's network. Per camera: a `binary_sensor` for motion, a timestamp `sensor`
 * for the last event and, where the camera detects objects, an `occupancy` `binary_sensor` per tracked label
 * (person, animal, vehicle: on while a confirmed object of that label is in view); per hub: a `sensor`
 * showing whether uploads are on (`cloud`/`local-only`), on a topic of the bridge's own. These go out in
 * clear: motion, object presence and event times are exactly what the hub's signed, sealed state keeps from
 * the broker, and turning discovery on is the household's explicit choice for a broker on its own network
 * (docs/mqtt-api.md). Everything is read-only — no entity has a command topic, since turning uploads on needs
 * the app's signature — and nothing names a person: the hub publishes no face identities, and an object
 * sensor says "a person", never who.
 */

export const HA_MOTION_ON = 'ON';
export const HA_MOTION_OFF = 'OFF';
export const HA_BIRTH_ONLINE = 'online';

/**
 * A camera as the bridge sees it: `name` is a display name chosen for the app, not personal data;
 * `objectLabels` the labels it tracks while its objects analyser is on (none, or absent, when it is off).
 */
export interface HomeAssistantCamera {
  id: string;
  name?: string | undefined;
  objectLabels?: readonly ObjectLabel[] | undefined;
}

export interface HomeAssistantBridgeOptions {
  /** The control plane's base topic (`mqtt.baseTopic`) and hub id: the entities read from under them. */
  baseTopic: string;
  hubId: string;
  /** Home Assistant's discovery prefix (`homeAssistant.prefix`). */
  prefix: string;
  /**
   * The cameras now (read at every announcement, so one added or removed over MQTT is announced or
   * withdrawn, and so are its object sensors when objects are turned on or off).
   */
  cameras: () => ReadonlyArray<HomeAssistantCamera>;
  logger: ControlLogger;
  /** Unix milliseconds (tests inject one). */
  now?: () => number;
}

/** One retained discovery config: where, the JSON it carries, and the entity's state topic (its `state_topic`). */
export interface DiscoveryMessage {
  topic: string;
  config: Record<string, unknown>;
  stateTopic: string;
}

/** Topics the entities read from, under `<baseTopic>/<hubId>/`. */
export function cameraTopics(baseTopic: string, hubId: string, cameraId: string): { motion: string; lastEvent: string } {
  const root = `${baseTopic}/${hubId}/camera/${cameraId}`;
  return { motion: `${root}/motion`, lastEvent: `${root}/last_event` };
}

/** Where a camera's object sensor for `label` reads `ON`/`OFF`, under `<baseTopic>/<hubId>/`. */
export function objectTopic(baseTopic: string, hubId: string, cameraId: string, label: ObjectLabel): string {
  return `${baseTopic}/${hubId}/camera/${cameraId}/object/${label}`;
}

/** Where the bridge publishes the upload mode (`cloud` / `local-only`) in clear, retained. */
export function modeTopic(baseTopic: string, hubId: string): string {
  return `${baseTopic}/${hubId}/ha/cloud_uploads`;
}

/**
 * The retained discovery configs for `options` (pure). `unique_id`s derive from the hub id and camera id
 * only, so they survive restarts and renames.
 */
export function discoveryMessages(options: Pick<HomeAssistantBridgeOptions, 'baseTopic' | 'hubId' | 'prefix'> & { cameras: ReadonlyArray<HomeAssistantCamera> }): DiscoveryMessage[] {
  const { baseTopic, hubId, prefix } = options;
  const topics = hubTopics(baseTopic, hubId);
  const node = `camveil_${hubId}`;
  const availability = {
    availability_topic: topics.availability,
    payload_available: 'online',
    payload_not_available: 'offline',
  };
  const origin = { name: 'camveil' };
  // Every entity reads one retained topic of the bridge's and is unavailable while the hub is offline.
  const entity = (topic: string, stateTopic: string, config: Record<string, unknown>): DiscoveryMessage => ({
    topic,
    stateTopic,
    config: { ...config, state_topic: stateTopic, ...availability, origin },
  });
  const hubDevice = { identifiers: [node], name: `camveil ${hubId}`, manufacturer: 'camveil', model: 'privacy gateway' };
  const messages: DiscoveryMessage[] = [
    // Not the hub's state: since MQTT API version 2 it is signed and mostly sealed. The bridge publishes
    // the mode on a topic of its own, only when the household turned discovery on.
    entity(`${prefix}/sensor/${node}/cloud_uploads/config`, modeTopic(baseTopic, hubId), {
      name: 'Cloud uploads',
      unique_id: `${node}_cloud_uploads`,
      icon: 'mdi:cloud-lock',
      entity_category: 'diagnostic',
      device: hubDevice,
    }),
  ];
  for (const camera of options.cameras) {
    const cam = cameraTopics(baseTopic, hubId, camera.id);
    const device = {
      identifiers: [`${node}_${camera.id}`],
      name: camera.name ?? camera.id,
      manufacturer: 'camveil',
      model: 'camera',
      via_device: node,
    };
    messages.push(
      entity(`${prefix}/binary_sensor/${node}/${camera.id}_motion/config`, cam.motion, {
        name: 'Motion',
        unique_id: `${node}_${camera.id}_motion`,
        device_class: 'motion',
        payload_on: HA_MOTION_ON,
        payload_off: HA_MOTION_OFF,
        device,
      }),
      entity(`${prefix}/sensor/${node}/${camera.id}_last_event/config`, cam.lastEvent, {
        name: 'Last event',
        unique_id: `${node}_${camera.id}_last_event`,
        device_class: 'timestamp',
        device,
      }),
    );
    for (const label of camera.objectLabels ?? []) {
      // Home Assistant's class for "something is there" (on: detected, off: clear), as against `motion`,
      // which the camera's motion sensor already is.
      messages.push(
        entity(`${prefix}/binary_sensor/${node}/${camera.id}_${label}/config`, objectTopic(baseTopic, hubId, camera.id, label), {
          name: LABEL_NAMES[label],
          unique_id: `${node}_${camera.id}_${label}`,
          device_class: 'occupancy',
          payload_on: HA_MOTION_ON,
          payload_off: HA_MOTION_OFF,
          device,
        }),
      );
    }
  }
  return messages;
}

/** An object sensor's name; Home Assistant shows it after the camera's (`Porch Person`). */
const LABEL_NAMES: Record<ObjectLabel, string> = { person: 'Person', animal: 'Animal', vehicle: 'Vehicle' };

/**
 * Publishes the discovery configs on `start`, again whenever Home Assistant announces itself
 * (`<prefix>/status` = `online`, its birth message, which it sends after a restart that may have lost
 * them) and on every reconnect; and each camera's motion state and object presence. Publishing never throws: a lost broker is
 * logged, and the retained configs are re-sent on the next birth or connect.
 */
export class HomeAssistantBridge {
  readonly #o: HomeAssistantBridgeOptions;
  readonly #now: () => number;
  readonly #statusTopic: string;
  /** The config topics last announced, each with its entity's state topic: those no longer announced are withdrawn. */
  #announced = new Map<string, string>();
  /** Confirmed objects in view now, per camera and label (the object sensors' state). */
  readonly #presence = new ObjectPresence();
  #client: ControlClient | undefined;
  readonly #onMessage = (topic: string, payload: Buffer): void => {
    if (topic === this.#statusTopic && payload.toString('utf8').trim() === HA_BIRTH_ONLINE) void this.announce();
  };
  readonly #onConnect = (): void => void this.announce();

  constructor(options: HomeAssistantBridgeOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#statusTopic = `${options.prefix}/status`;
  }

  /** Subscribes to Home Assistant's status, announces every entity, and sets every camera's motion to OFF. */
  async start(client: ControlClient): Promise<void> {
    if (this.#client !== undefined) return;
    this.#client = client;
    client.on('message', this.#onMessage);
    client.on('connect', this.#onConnect);
    await client.subscribeAsync(this.#statusTopic, { qos: 1 });
    await this.announce();
    // A hub that restarted is not in the middle of an event: clear an ON left retained by the last run.
    await Promise.all(this.#o.cameras().map((c) => this.#publish(this.#topicsOf(c.id).motion, HA_MOTION_OFF)));
  }

  /** Stops listening. The retained configs stay: Home Assistant shows the entities unavailable via `availability`. */
  async stop(): Promise<void> {
    const client = this.#client;
    if (client === undefined) return;
    this.#client = undefined;
    client.removeListener('message', this.#onMessage);
    client.removeListener('connect', this.#onConnect);
    try {
      await client.unsubscribeAsync(this.#statusTopic);
    } catch (error) {
      this.#o.logger.warn({ code: asCamveilError(error).code }, 'home assistant: status topic could not be unsubscribed');
    }
  }

  /**
   * Publishes every discovery config, retained, for the cameras there are now, and each object sensor's
   * state; the configs announced before and not now (a camera gone, its objects turned off, a label no
   * longer tracked) are withdrawn with their retained states (an empty retained payload removes the entity).
   */
  async announce(): Promise<void> {
    const cameras = this.#o.cameras();
    const messages = discoveryMessages({ ...this.#o, cameras });
    const current = new Map(messages.map((m) => [m.topic, m.stateTopic]));
    // Withdrawn with its retained state, so nothing about a gone entity stays on the broker.
    const gone = [...this.#announced].filter(([topic]) => !current.has(topic)).flat();
    this.#announced = current;
    const tracked = new Map(cameras.map((c) => [c.id, new Set(c.objectLabels ?? [])]));
    this.#presence.retain((cameraId, label) => tracked.get(cameraId)?.has(label) === true);
    await Promise.all(gone.map((topic) => this.#publish(topic, '')));
    await Promise.all(
      messages.map((m) => {
        assertNoSecrets(m.config);
        return this.#publish(m.topic, JSON.stringify(m.config));
      }),
    );
    // Each object sensor's state now: also clears an ON left retained by the last run.
    await Promise.all(
      cameras.flatMap((c) => (c.objectLabels ?? []).map((label) => this.#publishPresence(c.id, label))),
    );
    this.#o.logger.debug({ entities: messages.length }, 'home assistant: discovery published');
  }

  /** The hub's upload mode (`cloud` / `local-only`), for the "Cloud uploads" sensor. */
  async mode(mode: string): Promise<void> {
    await this.#publish(modeTopic(this.#o.baseTopic, this.#o.hubId), mode);
  }

  /** A camera's motion began (`on`) or ended; the start of motion is also its last event time. Unknown ids are ignored. */
  async motion(cameraId: string, on: boolean): Promise<void> {
    if (!this.#o.cameras().some((c) => c.id === cameraId)) return;
    const topics = this.#topicsOf(cameraId);
    await this.#publish(topics.motion, on ? HA_MOTION_ON : HA_MOTION_OFF);
    if (on) await this.#publish(topics.lastEvent, new Date(this.#now()).toISOString());
  }

  /** A tracked object was confirmed on a camera: its label's sensor turns ON. Cameras or labels not announced are ignored. */
  async objectConfirmed(cameraId: string, label: ObjectLabel, trackId: string): Promise<void> {
    if (!this.#tracks(cameraId, label)) return;
    if (this.#presence.confirm(cameraId, label, trackId)) await this.#publishPresence(cameraId, label);
  }

  /** A confirmed object was lost: its label's sensor turns OFF when it was the last of that label on the camera. */
  async objectEnded(cameraId: string, label: ObjectLabel, trackId: string): Promise<void> {
    if (this.#presence.end(cameraId, label, trackId)) await this.#publishPresence(cameraId, label);
  }

  /** The camera stopped seeing (stopped, failed, reconnecting): its object sensors turn OFF. */
  async cameraBlind(cameraId: string): Promise<void> {
    await Promise.all(this.#presence.clearCamera(cameraId).map((label) => this.#publishPresence(cameraId, label)));
  }

  #tracks(cameraId: string, label: ObjectLabel): boolean {
    return this.#o.cameras().some((c) => c.id === cameraId && (c.objectLabels ?? []).includes(label));
  }

  async #publishPresence(cameraId: string, label: ObjectLabel): Promise<void> {
    const on = this.#presence.present(cameraId, label);
    await this.#publish(objectTopic(this.#o.baseTopic, this.#o.hubId, cameraId, label), on ? HA_MOTION_ON : HA_MOTION_OFF);
  }

  #topicsOf(cameraId: string): { motion: string; lastEvent: string } {
    return cameraTopics(this.#o.baseTopic, this.#o.hubId, cameraId);
  }

  async #publish(topic: string, payload: string): Promise<void> {
    const client = this.#client;
    if (client === undefined) return;
    try {
      await client.publishAsync(topic, payload, { qos: 1, retain: true });
    } catch (error) {
      this.#o.logger.warn({ code: asCamveilError(error).code }, 'home assistant: publish failed');
    }
  }
}
