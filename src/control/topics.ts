import type { IClientOptions } from 'mqtt';
import { CamveilError } from '../errors.js';

/**
 * The MQTT topics of one hub, all under `<baseTopic>/<hubId>/` (docs/architecture.md, "Control plane"):
 * `availability` (retained online/offline, also the last will), `state` (retained JSON),
 * `request/<command>` → `response/<command>`, and `event` (age-sealed, binary).
 *
 * Commands may contain `/` (`devices/list`), so requests are subscribed with `request/#`, not `request/+`.
 */
export interface HubTopics {
  availability: string;
  state: string;
  event: string;
  /** Prefix of request topics, without the trailing slash. */
  request: string;
  /** Prefix of response topics, without the trailing slash. */
  response: string;
  /** What the hub subscribes to: `<request>/#`. */
  requestFilter: string;
}

const HUB_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Topic levels without MQTT wildcards or empty levels (NUL is checked apart). */
const BASE_TOPIC = /^[^#+/]+(\/[^#+/]+)*$/;

/**
 * Topics of hub `hubId` under `baseTopic` (e.g. `camveil`).
 *
 * @throws CamveilError `CAMVEIL_E_CONFIG_INVALID` when the base topic has wildcards or empty levels, or the
 * hub id is not 1–64 characters of `A-Za-z0-9_-`.
 */
export function hubTopics(baseTopic: string, hubId: string): HubTopics {
  if (!BASE_TOPIC.test(baseTopic) || baseTopic.includes('\0')) {
    throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', 'mqtt base topic must have no wildcards and no empty levels', { where: 'baseTopic' });
  }
  if (!HUB_ID.test(hubId)) {
    throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', 'hub id must be 1-64 characters of A-Za-z0-9_-', { where: 'hubId' });
  }
  const root = `${baseTopic}/${hubId}`;
  return {
    availability: `${root}/availability`,
    state: `${root}/state`,
    event: `${root}/event`,
    request: `${root}/request`,
    response: `${root}/response`,
    requestFilter: `${root}/request/#`,
  };
}

/** The command a request topic names (`…/request/devices/list` → `devices/list`); `''` when it names none. */
export function commandOfTopic(topics: HubTopics, topic: string): string {
  return topic.startsWith(`${topics.request}/`) ? topic.slice(topics.request.length + 1) : '';
}

/** Where the reply to a request on `command` goes; a request naming no command is answered on `response`. */
export function responseTopic(topics: HubTopics, command: string): string {
  return command === '' ? topics.response : `${topics.response}/${command}`;
}

export const AVAILABILITY_ONLINE = 'online';
export const AVAILABILITY_OFFLINE = 'offline';

/**
 * Options the hub's MQTT client must be created with: the retained `offline` last will on `availability`,
 * so a hub that dies or loses its connection shows as offline. Merge them into the broker URL's options.
 */
export function connectOptions(baseTopic: string, hubId: string): Pick<IClientOptions, 'will' | 'clean' | 'clientId' | 'protocolVersion'> {
  const topics = hubTopics(baseTopic, hubId);
  return {
    // The client id names the hub, so a second hub process with the same id takes over rather than doubling.
    clientId: `camveil-${hubId}`,
    clean: true,
    protocolVersion: 4,
    will: { topic: topics.availability, payload: Buffer.from(AVAILABILITY_OFFLINE), qos: 1, retain: true },
  };
}
