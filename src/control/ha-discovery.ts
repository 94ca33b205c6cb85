import { asCamveilError } from '../errors.js';
import type { ControlLogger } from './command.js';
import type { ControlClient } from './dispatcher.js';
import { assertNoSecrets } from './state-guard.js';
import { hubTopics } from './topics.js';

/**
 * Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery), opt-in
 * for a broker on the household's network. Per camera: a `binary_sensor` for motion and a timestamp
 * `sensor` for the last event; per hub: a `sensor` showing whether uploads are on (`cloud`/`local-only`),
 * on a topic of the bridge's own. These go out in clear: motion and event times are exactly what the hub's
 * signed, sealed state keeps from the broker, and turning discovery on is the household's explicit choice
 * for a broker on its own network (docs/mqtt-api.md). Everything is read-only — no entity has a command topic, since turning
 * uploads on needs the app's signature — and nothing names a person: the hub publishes no face identities.
 */

export const HA_MOTION_ON = 'ON';
export const HA_MOTION_OFF = 'OFF';
export const HA_BIRTH_ONLINE = 'online';

export interface HomeAssistantBridgeOptions {
  /** The control plane's base topic (`mqtt.baseTopic`) and hub id: the entities read from under them. */
  baseTopic: string;
  hubId: string;
  /** Home Assistant's discovery prefix (`homeAssistant.prefix`). */
  prefix: string;
  /**
   * The cameras now (read at every announcement, so one added or removed over MQTT is announced or
   * withdrawn); `name` is a display name chosen for the app, not personal data.
   */
  cameras: () => ReadonlyArray<{ id: string; name?: string | undefined }>;
  logger: ControlLogger;
  /** Unix milliseconds (tests inject one). */
  now?: () => number;
}

/** One retained discovery config: where, and the JSON it carries. */
export interface DiscoveryMessage {
  topic: string;
  config: Record<string, unknown>;
}

/** Topics the entities read from, under `<baseTopic>/<hubId>/`. */
export function cameraTopics(baseTopic: string, hubId: string, cameraId: string): { motion: string; lastEvent: string } {
  const root = `${baseTopic}/${hubId}/camera/${cameraId}`;
  return { motion: `${root}/motion`, lastEvent: `${root}/last_event` };
}

/** Where the bridge publishes the upload mode (`cloud` / `local-only`) in clear, retained. */
export function modeTopic(baseTopic: string, hubId: string): string {
  return `${baseTopic}/${hubId}/ha/cloud_uploads`;
}

/**
 * The retained discovery configs for `options` (pure). `unique_id`s derive from the hub id and camera id
 * only, so they survive restarts and renames.
 */
export function discoveryMessages(options: Pick<HomeAssistantBridgeOptions, 'baseTopic' | 'hubId' | 'prefix'> & { cameras: ReadonlyArray<{ id: string; name?: string | undefined }> }): DiscoveryMessage[] {
  const { baseTopic, hubId, prefix } = options;
  const topics = hubTopics(baseTopic, hubId);
  const node = `camveil_${hubId}`;
  const availability = {
    availability_topic: topics.availability,
    payload_available: 'online',
    payload_not_available: 'offline',
  };
  const origin = { name: 'camveil' };
  const hubDevice = { identifiers: [node], name: `camveil ${hubId}`, manufacturer: 'camveil', model: 'privacy gateway' };
  const messages: DiscoveryMessage[] = [
    {
      topic: `${prefix}/sensor/${node}/cloud_uploads/config`,
      config: {
        name: 'Cloud uploads',
        unique_id: `${node}_cloud_uploads`,
        // Not the hub's state: since MQTT API version 2 it is signed and mostly sealed. The bridge publishes
        // the mode on a topic of its own, only when the household turned discovery on.
        state_topic: modeTopic(baseTopic, hubId),
        icon: 'mdi:cloud-lock',
        entity_category: 'diagnostic',
        ...availability,
        device: hubDevice,
        origin,
      },
    },
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
      {
        topic: `${prefix}/binary_sensor/${node}/${camera.id}_motion/config`,
        config: {
          name: 'Motion',
          unique_id: `${node}_${camera.id}_motion`,
          device_class: 'motion',
          state_topic: cam.motion,
          payload_on: HA_MOTION_ON,
          payload_off: HA_MOTION_OFF,
          ...availability,
          device,
          origin,
        },
      },
      {
        topic: `${prefix}/sensor/${node}/${camera.id}_last_event/config`,
        config: {
          name: 'Last event',
          unique_id: `${node}_${camera.id}_last_event`,
          device_class: 'timestamp',
          state_topic: cam.lastEvent,
          ...availability,
          device,
          origin,
        },
      },
    );
  }
  return messages;
}

/**
 * Publishes the discovery configs on `start`, again whenever Home Assistant announces itself
 * (`<prefix>/status` = `online`, its birth message, which it sends after a restart that may have lost
 * them) and on every reconnect; and each camera's motion state. Publishing never throws: a lost broker is
 * logged, and the retained configs are re-sent on the next birth or connect.
 */
export class HomeAssistantBridge {
  readonly #o: HomeAssistantBridgeOptions;
  readonly #now: () => number;
  readonly #statusTopic: string;
  /** The cameras last announced, by id: their discovery configs are withdrawn when they go. */
  #announced = new Map<string, string[]>();
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
   * Publishes every discovery config, retained, for the cameras there are now; the configs of a camera
   * announced before and gone since are withdrawn (an empty retained payload removes the entity).
   */
  async announce(): Promise<void> {
    const cameras = this.#o.cameras();
    const messages = discoveryMessages({ ...this.#o, cameras });
    const node = `camveil_${this.#o.hubId}`;
    const { prefix } = this.#o;
    const current = new Map(cameras.map((c) => [c.id, [`${prefix}/binary_sensor/${node}/${c.id}_motion/config`, `${prefix}/sensor/${node}/${c.id}_last_event/config`]]));
    const gone = [...this.#announced].filter(([id]) => !current.has(id)).flatMap(([, topics]) => topics);
    this.#announced = current;
    await Promise.all(gone.map((topic) => this.#publish(topic, '')));
    await Promise.all(
      messages.map((m) => {
        assertNoSecrets(m.config);
        return this.#publish(m.topic, JSON.stringify(m.config));
      }),
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
