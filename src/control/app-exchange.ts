import { CamveilError } from '../errors.js';
import { peekHubPayload } from './hub-message.js';
import { responseOf, transactionOf } from './app-reply.js';
import type { HubTopics } from './topics.js';

export type MessageListener = (topic: string, payload: Buffer) => void;

/** The part of an MQTT.js `MqttClient` the app side uses. */
export interface AppMqttClient {
  publishAsync(topic: string, message: string | Buffer, opts?: { qos?: 0 | 1 | 2; retain?: boolean }): Promise<unknown>;
  subscribeAsync(topic: string, opts?: { qos: 0 | 1 | 2 }): Promise<unknown>;
  unsubscribeAsync(topic: string): Promise<unknown>;
  on(event: 'message', listener: MessageListener): unknown;
  removeListener(event: 'message', listener: MessageListener): unknown;
}

/**
 * Requests out and their replies back over the broker: publishes on `request/<command>` and hands back the
 * raw bytes of the first message on `response/…` naming the request's transaction. Nothing here is
 * checked: the caller opens the reply against the pinned hub.
 */
export class ReplyExchange {
  readonly #client: AppMqttClient;
  readonly #topics: HubTopics;
  readonly #timeoutMs: number;
  readonly #waiting = new Map<string, (raw: Buffer) => void>();
  readonly #onMessage: MessageListener = (topic, payload) => this.#dispatch(topic, payload);
  #subscribed = false;

  constructor(client: AppMqttClient, topics: HubTopics, timeoutMs: number) {
    this.#client = client;
    this.#topics = topics;
    this.#timeoutMs = timeoutMs;
  }

  /** Subscribes to `response/#`; `exchange` calls it when needed. */
  async start(): Promise<void> {
    if (this.#subscribed) return;
    this.#subscribed = true;
    this.#client.on('message', this.#onMessage);
    await this.#client.subscribeAsync(`${this.#topics.response}/#`, { qos: 1 });
  }

  async stop(): Promise<void> {
    if (!this.#subscribed) return;
    this.#subscribed = false;
    this.#client.removeListener('message', this.#onMessage);
    await this.#client.unsubscribeAsync(`${this.#topics.response}/#`);
  }

  /**
   * Publishes a request and resolves with the raw bytes of the first reply naming its transaction. The timer
   * covers the whole exchange: a broker that is down leaves the subscription and the publish queued in the
   * MQTT client (they never settle), and the call still fails with the timeout, once; a publish that fails
   * later is absorbed, as the reply's outcome already decided the call.
   *
   * @throws CamveilError `CAMVEIL_E_INTERNAL` when no reply comes in time.
   */
  async exchange(command: string, bytes: Buffer, transaction: string): Promise<Buffer> {
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      this.#waiting.delete(transaction);
    };
    const reply = new Promise<Buffer>((resolve, reject) => {
      timer = setTimeout(() => {
        done();
        reject(new CamveilError('CAMVEIL_E_INTERNAL', `no reply to ${command} within ${this.#timeoutMs} ms`, { where: 'mqtt' }));
      }, this.#timeoutMs);
      this.#waiting.set(transaction, (raw) => {
        done();
        resolve(raw);
      });
    });
    const sent = (async () => {
      await this.start();
      await this.#client.publishAsync(`${this.#topics.request}/${command}`, bytes, { qos: 1, retain: false });
    })();
    // Only a failed publish decides the call; a publish that completes leaves it to the reply (or its timer).
    const failed = sent.then(
      () => new Promise<never>(() => undefined),
      (error: unknown) => {
        done();
        throw error;
      },
    );
    return Promise.race([reply, failed]);
  }

  #dispatch(topic: string, payload: Buffer): void {
    if (!topic.startsWith(`${this.#topics.response}/`) && topic !== this.#topics.response) return;
    // Matched on a transaction read before any check (a forged reply names it too): the first message
    // naming a request's transaction decides it, and the caller refuses it unless the hub signed it.
    const peeked = peekHubPayload(payload);
    const transaction = responseOf(peeked)?.transaction ?? transactionOf(peeked);
    const waiter = typeof transaction === 'string' ? this.#waiting.get(transaction) : undefined;
    waiter?.(payload);
  }
}

/**
 * The next message on `topic` (a retained one at once), then unsubscribed.
 *
 * @throws CamveilError `CAMVEIL_E_INTERNAL` when none arrives within `timeoutMs`.
 */
export async function nextMessage(client: AppMqttClient, topic: string, what: string, timeoutMs: number): Promise<Buffer> {
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('message', listener);
      reject(new CamveilError('CAMVEIL_E_INTERNAL', `no ${what} within ${timeoutMs} ms`, { where: 'mqtt' }));
    }, timeoutMs);
    const listener: MessageListener = (t, payload) => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.removeListener('message', listener);
      resolve(payload);
    };
    client.on('message', listener);
    client.subscribeAsync(topic, { qos: 1 }).catch((error: unknown) => {
      clearTimeout(timer);
      client.removeListener('message', listener);
      reject(error instanceof Error ? error : new Error(String(error)));
    });
  });
  await client.unsubscribeAsync(topic);
  return raw;
}
