import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { decryptToBuffer } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import type { ControlResponse } from './command.js';
import { keyIdOf } from './key-registry.js';
import { pairingProof } from './pairing.js';
import { hubTopics, type HubTopics } from './topics.js';

type Listener = (topic: string, payload: Buffer) => void;

/** The part of an MQTT.js `MqttClient` the app side uses. */
export interface AppMqttClient {
  publishAsync(topic: string, message: string | Buffer, opts?: { qos?: 0 | 1 | 2; retain?: boolean }): Promise<unknown>;
  subscribeAsync(topic: string, opts?: { qos: 0 | 1 | 2 }): Promise<unknown>;
  unsubscribeAsync(topic: string): Promise<unknown>;
  on(event: 'message', listener: Listener): unknown;
  removeListener(event: 'message', listener: Listener): unknown;
}

/** An app's Ed25519 key: the private key, its raw public key (base64) and key id. */
export interface AppKey {
  privateKey: KeyObject;
  publicKey: string;
  keyId: string;
}

export function generateAppKey(): AppKey {
  return appKeyOf(generateKeyPairSync('ed25519').privateKey);
}

function appKeyOf(privateKey: KeyObject): AppKey {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x ?? '', 'base64url');
  return { privateKey, publicKey: raw.toString('base64'), keyId: keyIdOf(raw) };
}

/** A request ready to publish: its envelope bytes and transaction. */
export interface PreparedRequest {
  command: string;
  transaction: string;
  bytes: Buffer;
}

export interface AppClientOptions {
  client: AppMqttClient;
  baseTopic: string;
  hubId: string;
  /** The key to sign with; generated when absent (and `stateFile` is absent or new). */
  key?: AppKey;
  /** JSON file (mode 0600) holding the private key and last sequence number; in memory when absent. */
  stateFile?: string;
  /** How long `request` waits for the reply (default 10 s). */
  timeoutMs?: number;
  now?: () => number;
}

/**
 * The app side of the MQTT API (tests, and later `camveil app …`). Sequence numbers are
 * `max(last + 1, now)`, so a client that lost its state file still moves forward past what the hub saw.
 */
export class AppClient {
  readonly key: AppKey;
  readonly topics: HubTopics;
  readonly #client: AppMqttClient;
  readonly #stateFile: string | undefined;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #waiting = new Map<string, (response: ControlResponse) => void>();
  readonly #onMessage: Listener = (topic, payload) => this.#dispatch(topic, payload);
  #seq = 0;
  #subscribed = false;

  constructor(options: AppClientOptions) {
    this.#client = options.client;
    this.topics = hubTopics(options.baseTopic, options.hubId);
    this.#stateFile = options.stateFile;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    const saved = options.stateFile !== undefined && existsSync(options.stateFile) ? readState(options.stateFile) : undefined;
    this.key = saved?.key ?? options.key ?? generateAppKey();
    this.#seq = saved?.seq ?? 0;
    if (options.stateFile !== undefined && saved === undefined) this.#save();
  }

  /** Subscribes to `response/#`; `request` calls it when needed. */
  async start(): Promise<void> {
    if (this.#subscribed) return;
    this.#subscribed = true;
    this.#client.on('message', this.#onMessage);
    await this.#client.subscribeAsync(`${this.topics.response}/#`, { qos: 1 });
  }

  async stop(): Promise<void> {
    if (!this.#subscribed) return;
    this.#subscribed = false;
    this.#client.removeListener('message', this.#onMessage);
    await this.#client.unsubscribeAsync(`${this.topics.response}/#`);
  }

  /** Builds (and, when signed, consumes a sequence number for) a request without sending it. */
  prepare(command: string, args: unknown, options: { sign: boolean }): PreparedRequest {
    const transaction = randomUUID();
    const now = this.#now();
    this.#seq = Math.max(this.#seq + 1, now);
    if (options.sign) this.#save();
    const payload = Buffer.from(JSON.stringify({ command, transaction, seq: this.#seq, ts: now, args }), 'utf8');
    const envelope: Record<string, string> = { payload: payload.toString('base64') };
    if (options.sign) {
      envelope.keyId = this.key.keyId;
      envelope.sig = sign(null, payload, this.key.privateKey).toString('base64');
    }
    return { command, transaction, bytes: Buffer.from(JSON.stringify(envelope), 'utf8') };
  }

  /** Publishes `bytes` on `request/<command>` and waits for the reply carrying `transaction`. */
  async send(command: string, bytes: Buffer, transaction: string): Promise<ControlResponse> {
    await this.start();
    const reply = new Promise<ControlResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(transaction);
        reject(new CamveilError('CAMVEIL_E_INTERNAL', `no reply to ${command} within ${this.#timeoutMs} ms`, { where: 'mqtt' }));
      }, this.#timeoutMs);
      this.#waiting.set(transaction, (response) => {
        clearTimeout(timer);
        this.#waiting.delete(transaction);
        resolve(response);
      });
    });
    await this.#client.publishAsync(`${this.topics.request}/${command}`, bytes, { qos: 1, retain: false });
    return reply;
  }

  async request(command: string, args: unknown, options: { sign: boolean }): Promise<ControlResponse> {
    const prepared = this.prepare(command, args, options);
    return this.send(command, prepared.bytes, prepared.transaction);
  }

  /** Pairs this app's key with the code shown by `camveil pair`; unsigned (the proof is its authority). */
  async pair(code: string, recipient: string, label?: string): Promise<ControlResponse> {
    const claim = { publicKey: this.key.publicKey, recipient, label };
    const proof = await pairingProof(code, claim);
    return this.request('pair', { ...claim, proof }, { sign: false });
  }

  /**
   * Decrypts every sealed `event` with `identity` and passes the JSON to `onEvent`; events that do not
   * decrypt go to `onError`. Returns a function that stops following.
   */
  async followEvents(identity: string, onEvent: (event: unknown) => void, onError?: (error: unknown) => void): Promise<() => Promise<void>> {
    const listener: Listener = (topic, payload) => {
      if (topic !== this.topics.event) return;
      decryptToBuffer(identity, payload)
        .then((plain) => onEvent(JSON.parse(plain.toString('utf8'))))
        .catch((error: unknown) => onError?.(error));
    };
    this.#client.on('message', listener);
    await this.#client.subscribeAsync(this.topics.event, { qos: 1 });
    return async () => {
      this.#client.removeListener('message', listener);
      await this.#client.unsubscribeAsync(this.topics.event);
    };
  }

  #dispatch(topic: string, payload: Buffer): void {
    if (!topic.startsWith(`${this.topics.response}/`) && topic !== this.topics.response) return;
    let response: ControlResponse;
    try {
      response = JSON.parse(payload.toString('utf8')) as ControlResponse;
    } catch {
      return;
    }
    const waiter = typeof response.transaction === 'string' ? this.#waiting.get(response.transaction) : undefined;
    waiter?.(response);
  }

  #save(): void {
    if (this.#stateFile === undefined) return;
    const pkcs8 = this.key.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
    writeFileSync(this.#stateFile, `${JSON.stringify({ privateKey: pkcs8, seq: this.#seq })}\n`, { mode: 0o600 });
  }
}

function readState(file: string): { key: AppKey; seq: number } {
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as { privateKey?: unknown; seq?: unknown };
    if (typeof state.privateKey !== 'string' || typeof state.seq !== 'number') throw new Error('bad fields');
    const privateKey = createPrivateKey({ key: Buffer.from(state.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
    return { key: appKeyOf(privateKey), seq: state.seq };
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_KEY_UNREADABLE', `${file}: not an app key state file`, { where: file, cause: error });
  }
}
