import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { decryptToBuffer, encryptToBuffer } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import type { ControlResponse } from './command.js';
import { CLEAR_ARGS_COMMANDS } from './envelope.js';
import { keyIdOf } from './key-registry.js';
import { AuditHeadWatch, auditHeadsSchema } from './audit-head-watch.js';
import { openHubMessage, peekHubPayload, pinnedHubSchema, type HubHealth, type PinnedHub } from './hub-message.js';
import { openReply, wireResponseSchema } from './sealed-reply.js';
import { appProof, hubProofMatches, pairingKey, sealLabel } from './pairing.js';
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
  /**
   * The hub's keys when they are known without pairing here (tests; a second device given them by the first).
   * A state file's pinned hub wins.
   */
  pinned?: PinnedHub;
  /** JSON file (mode 0600) holding the private key, last sequence number and pinned hubs; in memory when absent. */
  stateFile?: string;
  /**
   * The phone's age identities (`AGE-SECRET-KEY-1…`): they open the hub's sealed replies, which are sealed to
   * the household recipients and the active paired phones' recipients (sealed-reply.ts).
   */
  identity?: string | readonly string[];
  /** How long `request` waits for the reply (default 10 s). */
  timeoutMs?: number;
  now?: () => number;
}

/** How many event ids the app remembers, to refuse an event the broker replays. */
const SEEN_EVENTS = 10_000;

function unverified(message: string, where: string): CamveilError {
  return new CamveilError('CAMVEIL_E_HUB_UNVERIFIED', message, { where });
}

/**
 * The app side of the MQTT API version 2 (tests, and `camveil app …`). Sequence numbers are
 * `max(last + 1, now)`, so a client that lost its state file still moves forward past what the hub saw.
 *
 * The broker is an adversary: the hub's keys are pinned at pairing (only when the hub proves it knows the
 * code), and every reply, event and state is believed only when the pinned key signed it for this hub (and,
 * for a reply, for this command and transaction). Anything else is refused with `CAMVEIL_E_HUB_UNVERIFIED`.
 */
export class AppClient {
  readonly key: AppKey;
  readonly topics: HubTopics;
  readonly #client: AppMqttClient;
  readonly #stateFile: string | undefined;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #hubKey: string;
  readonly #hubId: string;
  readonly #baseTopic: string;
  readonly #waiting = new Map<string, (raw: Buffer) => void>();
  readonly #onMessage: Listener = (topic, payload) => this.#dispatch(topic, payload);
  readonly #seenEvents = new Set<string>();
  /** The highest signed audit head seen per hub (kept in the state file): a lower one later is a rollback. */
  readonly #auditHeads: AuditHeadWatch;
  #hubs: Record<string, PinnedHub>;
  #identities: readonly string[] | undefined;
  /** The identity file `camveil app` was last given (kept in the state file: a path, never the key). */
  #identityFile: string | undefined;
  #seq = 0;
  #subscribed = false;

  constructor(options: AppClientOptions) {
    this.#client = options.client;
    this.topics = hubTopics(options.baseTopic, options.hubId);
    this.#hubId = options.hubId;
    this.#baseTopic = options.baseTopic;
    this.#hubKey = `${options.baseTopic}/${options.hubId}`;
    this.#stateFile = options.stateFile;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    const saved = options.stateFile !== undefined && existsSync(options.stateFile) ? readState(options.stateFile) : undefined;
    this.key = saved?.key ?? options.key ?? generateAppKey();
    this.#seq = saved?.seq ?? 0;
    this.#auditHeads = new AuditHeadWatch(saved?.auditHeads);
    this.#identities = options.identity === undefined ? undefined : typeof options.identity === 'string' ? [options.identity] : options.identity;
    this.#identityFile = saved?.identityFile;
    this.#hubs = { ...(options.pinned === undefined ? {} : { [this.#hubKey]: options.pinned }), ...saved?.hubs };
    if (options.stateFile !== undefined && saved === undefined) this.#save();
  }

  /** Sets the age identities that open the hub's sealed replies (see AppClientOptions.identity). */
  useIdentity(identities: string | readonly string[]): void {
    this.#identities = typeof identities === 'string' ? [identities] : identities;
  }

  /** The identity file remembered in the state file (`camveil app` uses it when no `--identity` is given). */
  get identityFile(): string | undefined {
    return this.#identityFile;
  }

  /** Remembers `file` (its path only) in the state file as where this app's age identity is. */
  rememberIdentityFile(file: string): void {
    if (this.#identityFile === file) return;
    this.#identityFile = file;
    this.#save();
  }

  /** The hub's keys as pinned at pairing; undefined before pairing. */
  get pinned(): PinnedHub | undefined {
    return this.#hubs[this.#hubKey];
  }

  /**
   * Pins the hub's keys given by a device already paired with it (`camveil app devices add --out`, carried
   * over a channel the broker does not control) and saves them in the state file. Never replaces keys
   * pinned before: a bundle that differs from them is refused.
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when the bundle names another hub or base topic, or
   * differs from the keys this app already pinned for the hub.
   */
  pin(hub: PinnedHub): void {
    if (hub.hubId !== this.#hubId || hub.baseTopic !== this.#baseTopic) throw unverified(`the pinned-hub bundle is for ${hub.baseTopic}/${hub.hubId}, not ${this.#hubKey}`, 'hub');
    const known = this.pinned;
    if (known !== undefined && (known.signingKey !== hub.signingKey || known.recipient !== hub.recipient)) {
      throw unverified(`this app already pinned other keys for hub ${this.#hubId}: the bundle was not taken`, 'hub');
    }
    this.#hubs = { ...this.#hubs, [this.#hubKey]: hub };
    this.#save();
  }

  /**
   * The pinned hub, for sealing to its recipient and checking its signatures.
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when this app has not paired with the hub.
   */
  requirePinned(): PinnedHub {
    const pinned = this.pinned;
    if (pinned === undefined) throw unverified(`this app has not paired with hub ${this.#hubId} (run camveil app pair): nothing it says can be checked`, 'hub');
    return pinned;
  }

  /** The highest audit head this app has seen from the hub (what `camveil audit verify --head` takes); undefined before any. */
  get auditHead(): { seq: number; hash: string; at: string } | undefined {
    const signed = this.#auditHeads.head(this.#hubKey);
    return signed === undefined ? undefined : { seq: signed.head.seq, hash: signed.head.hash, at: signed.head.at };
  }

  /**
   * Checks the signed audit head in the hub's decrypted full `state` against the highest seen before, and
   * remembers it (readState calls it; so must anything else that opens a state, such as a `status` reply).
   *
   * @throws CamveilError `CAMVEIL_E_AUDIT_ROLLBACK` when the hub's audit log went back; `CAMVEIL_E_HUB_UNVERIFIED`
   * when the head is not the pinned hub's.
   */
  observeState(state: unknown): void {
    if (this.#auditHeads.observe(this.#hubKey, this.requirePinned(), state)) this.#save();
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

  /**
   * Builds (and, when signed, consumes a sequence number for) a request without sending it. Args that are
   * not empty are sealed with age to the hub recipient pinned at pairing (never to one a reply named) and
   * travel as `sealedArgs`, inside the signed bytes; only `pair` sends its args in clear.
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when there are args to seal and this app has not paired with the hub.
   */
  async prepare(command: string, args: unknown, options: { sign: boolean }): Promise<PreparedRequest> {
    const body = await this.#argsOf(command, args);
    const transaction = randomUUID();
    const now = this.#now();
    this.#seq = Math.max(this.#seq + 1, now);
    if (options.sign) this.#save();
    const request = { v: 2, hub: this.#hubId, base: this.#baseTopic, command, transaction, seq: this.#seq, ts: now, ...body };
    const payload = Buffer.from(JSON.stringify(request), 'utf8');
    const envelope: Record<string, string> = { payload: payload.toString('base64') };
    if (options.sign) {
      envelope.keyId = this.key.keyId;
      envelope.sig = sign(null, payload, this.key.privateKey).toString('base64');
    }
    return { command, transaction, bytes: Buffer.from(JSON.stringify(envelope), 'utf8') };
  }

  /** `{args}` in clear when empty (or for `pair`), else `{sealedArgs}` sealed to the pinned hub recipient. */
  async #argsOf(command: string, args: unknown): Promise<{ args?: unknown; sealedArgs?: string }> {
    const empty = args === undefined || (args !== null && typeof args === 'object' && !Array.isArray(args) && Object.keys(args).length === 0);
    if (empty || CLEAR_ARGS_COMMANDS.has(command)) return args === undefined ? {} : { args };
    const sealed = await encryptToBuffer([this.requirePinned().recipient], Buffer.from(JSON.stringify(args), 'utf8'));
    return { sealedArgs: sealed.toString('base64') };
  }

  /**
   * Publishes `bytes` on `request/<command>` and waits for the reply carrying `transaction`, which must be
   * signed by the pinned hub key for this hub, command and transaction; its sealed result is opened with
   * this app's identity and returned as the command gave it.
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when the app has not paired with the hub or the first
   * reply carrying the transaction is not the hub's; `CAMVEIL_E_REPLY_SEALED` when an `ok` result does not
   * open with this app's identity (sealed-reply.ts); `CAMVEIL_E_INTERNAL` when no reply comes in time.
   */
  async send(command: string, bytes: Buffer, transaction: string): Promise<ControlResponse> {
    const pinned = this.requirePinned();
    const raw = await this.#exchange(command, bytes, transaction);
    return this.#openResponse(raw, pinned, command, transaction);
  }

  async request(command: string, args: unknown, options: { sign: boolean }): Promise<ControlResponse> {
    const prepared = await this.prepare(command, args, options);
    return this.send(command, prepared.bytes, prepared.transaction);
  }

  /**
   * Pairs this app's key with the code shown by `camveil pair` (unsigned: the proof is its authority). The
   * hub's answer carries its signing key and age recipient with its own proof of the code over them and
   * this app's key; only when that proof and the answer's signature check are they pinned (and saved).
   * A refusal cannot be checked before anything is pinned: it is returned as the error it is (never "ok").
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when an "ok" answer's proof or signature does not check.
   */
  async pair(code: string, recipient: string, label?: string): Promise<ControlResponse> {
    const key = await pairingKey(code);
    // The label is a name a person chose: sealed under the code's key, as the hub's recipient is not known yet.
    const sealedLabel = label === undefined ? {} : { sealedLabel: sealLabel(key, label) };
    const claim = { hubId: this.#hubId, publicKey: this.key.publicKey, recipient, ...sealedLabel };
    const proof = appProof(key, claim);
    const prepared = await this.prepare('pair', { publicKey: claim.publicKey, recipient, ...sealedLabel, proof }, { sign: false });
    const raw = await this.#exchange('pair', prepared.bytes, prepared.transaction);
    const peeked = wireResponseSchema.safeParse(responseOf(peekHubPayload(raw)));
    if (!peeked.success || peeked.data.status !== 'ok') {
      const known = this.pinned;
      if (known !== undefined) return this.#openResponse(raw, known, 'pair', prepared.transaction);
      // Unchecked (nothing is pinned yet), but an error changes nothing: it is returned as the error it says.
      if (peeked.success) return openReply('pair', peeked.data, undefined);
      throw unverified('the answer to pair is not a hub reply', 'pair');
    }
    const answer = pairAnswerSchema.safeParse(peeked.data.data);
    if (!answer.success) throw unverified('the answer to pair carries no hub keys and proof', 'pair');
    const hub = answer.data.hub;
    if (hub.hubId !== this.#hubId || hub.baseTopic !== this.#baseTopic) throw unverified('the answer to pair names another hub', 'hub');
    if (!hubProofMatches(key, { ...hub, appKey: this.key.publicKey }, answer.data.proof)) {
      throw unverified("the hub's proof of the pairing code does not check: its keys were not pinned", 'proof');
    }
    const response = await this.#openResponse(raw, hub, 'pair', prepared.transaction);
    this.#hubs = { ...this.#hubs, [this.#hubKey]: hub };
    this.#save();
    return response;
  }

  /**
   * Follows the hub's sealed events: each must be signed by the pinned key for this hub, fresh and not seen
   * before; it is then decrypted with `identity` and passed to `onEvent`, except dummy (`cover`) events, which
   * are dropped. Events that fail any check go to `onError` (a `CAMVEIL_E_HUB_UNVERIFIED` for the checks).
   * Returns a function that stops following.
   */
  async followEvents(identity: string | readonly string[], onEvent: (event: unknown) => void, onError?: (error: unknown) => void): Promise<() => Promise<void>> {
    const pinned = this.requirePinned();
    // One at a time, so events reach `onEvent` in the order they arrived.
    let tail: Promise<void> = Promise.resolve();
    const listener: Listener = (topic, payload) => {
      if (topic !== this.topics.event) return;
      tail = tail.then(() =>
        this.#openEvent(payload, pinned, identity)
          .then((event) => {
            if (event !== undefined) onEvent(event);
          })
          .catch((error: unknown) => onError?.(error)),
      );
    };
    this.#client.on('message', listener);
    await this.#client.subscribeAsync(this.topics.event, { qos: 1 });
    return async () => {
      this.#client.removeListener('message', listener);
      await this.#client.unsubscribeAsync(this.topics.event);
    };
  }

  /**
   * The hub's retained `state`, checked against the pinned key: the clear health, and the full state when
   * `identity` opens its sealed part.
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when the state is not the hub's (unsigned, mis-signed,
   * another hub, stale); `CAMVEIL_E_INTERNAL` when none arrives in time.
   */
  async readState(identity?: string): Promise<{ health: HubHealth; state?: unknown }> {
    const pinned = this.requirePinned();
    const raw = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#client.removeListener('message', listener);
        reject(new CamveilError('CAMVEIL_E_INTERNAL', `no state within ${this.#timeoutMs} ms`, { where: 'mqtt' }));
      }, this.#timeoutMs);
      const listener: Listener = (topic, payload) => {
        if (topic !== this.topics.state) return;
        clearTimeout(timer);
        this.#client.removeListener('message', listener);
        resolve(payload);
      };
      this.#client.on('message', listener);
      this.#client.subscribeAsync(this.topics.state, { qos: 1 }).catch((error: unknown) => {
        clearTimeout(timer);
        this.#client.removeListener('message', listener);
        reject(error instanceof Error ? error : new Error(String(error)));
      });
    });
    await this.#client.unsubscribeAsync(this.topics.state);
    const payload = openHubMessage(raw, pinned, 'state', this.#now());
    if (identity === undefined || payload.sealed === undefined) return { health: payload.health };
    const state = JSON.parse((await decryptToBuffer(identity, Buffer.from(payload.sealed, 'base64'))).toString('utf8')) as unknown;
    this.observeState(state);
    return { health: payload.health, state };
  }

  async #openEvent(raw: Buffer, pinned: PinnedHub, identity: string | readonly string[]): Promise<unknown> {
    const payload = openHubMessage(raw, pinned, 'event', this.#now());
    if (this.#seenEvents.has(payload.id)) throw unverified('event replayed (its id was seen before)', 'id');
    this.#seenEvents.add(payload.id);
    if (this.#seenEvents.size > SEEN_EVENTS) this.#seenEvents.delete(this.#seenEvents.values().next().value!);
    const event = JSON.parse((await decryptToBuffer(identity, Buffer.from(payload.sealed, 'base64'))).toString('utf8')) as unknown;
    if (event !== null && typeof event === 'object' && 'type' in event && event.type === 'cover') return undefined;
    return event;
  }

  async #openResponse(raw: Buffer, pinned: PinnedHub, command: string, transaction: string): Promise<ControlResponse> {
    const payload = openHubMessage(raw, pinned, 'response', this.#now());
    if (payload.command !== command) throw unverified(`the reply is for command ${payload.command.slice(0, 64)}, not ${command}`, 'command');
    if (payload.response.transaction !== transaction) throw unverified('the reply is for another request (transaction)', 'transaction');
    return openReply(command, payload.response, this.#identities);
  }

  /**
   * Publishes a request and resolves with the raw bytes of the first reply naming its transaction. The timer
   * covers the whole exchange: a broker that is down leaves the subscription and the publish queued in the
   * MQTT client (they never settle), and the call still fails with the timeout, once; a publish that fails
   * later is absorbed, as the reply's outcome already decided the call.
   */
  async #exchange(command: string, bytes: Buffer, transaction: string): Promise<Buffer> {
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
      await this.#client.publishAsync(`${this.topics.request}/${command}`, bytes, { qos: 1, retain: false });
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
    if (!topic.startsWith(`${this.topics.response}/`) && topic !== this.topics.response) return;
    // Matched on a transaction read before any check (a forged reply names it too): the first message
    // naming a request's transaction decides it, and send() refuses it unless the hub signed it.
    const peeked = peekHubPayload(payload);
    const transaction = responseOf(peeked)?.transaction ?? transactionOf(peeked);
    const waiter = typeof transaction === 'string' ? this.#waiting.get(transaction) : undefined;
    waiter?.(payload);
  }

  #save(): void {
    if (this.#stateFile === undefined) return;
    const pkcs8 = this.key.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
    const identityFile = this.#identityFile === undefined ? {} : { identityFile: this.#identityFile };
    writeFileSync(this.#stateFile, `${JSON.stringify({ privateKey: pkcs8, seq: this.#seq, hubs: this.#hubs, auditHeads: this.#auditHeads.toJSON(), ...identityFile })}\n`, { mode: 0o600 });
  }
}

const pairAnswerSchema = z.object({ keyId: z.string(), hub: pinnedHubSchema, proof: z.string().max(64) });

/** The reply inside a (possibly forged) hub message payload, unchecked. */
function responseOf(payload: unknown): ControlResponse | undefined {
  if (payload === null || typeof payload !== 'object' || !('response' in payload)) return undefined;
  const response = payload.response;
  return response !== null && typeof response === 'object' && 'status' in response ? (response as ControlResponse) : undefined;
}

function transactionOf(payload: unknown): unknown {
  return payload !== null && typeof payload === 'object' && 'transaction' in payload ? payload.transaction : undefined;
}

const stateFileSchema = z.object({
  privateKey: z.string(),
  seq: z.number(),
  hubs: z.record(z.string(), pinnedHubSchema).optional(),
  auditHeads: auditHeadsSchema.optional(),
  identityFile: z.string().min(1).max(4096).optional(),
});

function readState(file: string): { key: AppKey; seq: number; hubs: Record<string, PinnedHub>; auditHeads: z.infer<typeof auditHeadsSchema>; identityFile?: string } {
  try {
    const state = stateFileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    const privateKey = createPrivateKey({ key: Buffer.from(state.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
    return { key: appKeyOf(privateKey), seq: state.seq, hubs: state.hubs ?? {}, auditHeads: state.auditHeads ?? {}, ...(state.identityFile === undefined ? {} : { identityFile: state.identityFile }) };
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_KEY_UNREADABLE', `${file}: not an app key state file`, { where: file, cause: error });
  }
}
