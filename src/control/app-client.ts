import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { decryptToBuffer } from '../crypto/age-stream.js';
import type { ControlResponse } from './command.js';
import { generateAppKey, type AppKey } from './app-key.js';
import { nextMessage, ReplyExchange, type AppMqttClient, type MessageListener } from './app-exchange.js';
import { openAppReply, pairAnswerSchema, responseOf, unverified } from './app-reply.js';
import { requestArgs, requestEnvelope, type PreparedRequest } from './app-request.js';
import { readAppState, writeAppState } from './app-state-file.js';
import { AuditHeadWatch } from './audit-head-watch.js';
import { openHubMessage, peekHubPayload, type HubHealth, type PinnedHub } from './hub-message.js';
import { openReply, wireResponseSchema } from './sealed-reply.js';
import { appProof, hubProofMatches, pairingKey, sealLabel } from './pairing.js';
import { hubTopics, type HubTopics } from './topics.js';

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
  readonly #exchange: ReplyExchange;
  readonly #seenEvents = new Set<string>();
  /** The highest signed audit head seen per hub (kept in the state file): a lower one later is a rollback. */
  readonly #auditHeads: AuditHeadWatch;
  #hubs: Record<string, PinnedHub>;
  #identities: readonly string[] | undefined;
  /** The identity file `camveil app` was last given (kept in the state file: a path, never the key). */
  #identityFile: string | undefined;
  #seq = 0;

  constructor(options: AppClientOptions) {
    this.#client = options.client;
    this.topics = hubTopics(options.baseTopic, options.hubId);
    this.#hubId = options.hubId;
    this.#baseTopic = options.baseTopic;
    this.#hubKey = `${options.baseTopic}/${options.hubId}`;
    this.#stateFile = options.stateFile;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#exchange = new ReplyExchange(options.client, this.topics, this.#timeoutMs);
    const saved = options.stateFile !== undefined && existsSync(options.stateFile) ? readAppState(options.stateFile) : undefined;
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
  start(): Promise<void> {
    return this.#exchange.start();
  }

  stop(): Promise<void> {
    return this.#exchange.stop();
  }

  /**
   * Builds (and, when signed, consumes a sequence number for) a request without sending it. Args that are
   * not empty are sealed with age to the hub recipient pinned at pairing (never to one a reply named) and
   * travel as `sealedArgs`, inside the signed bytes; only `pair` sends its args in clear.
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when there are args to seal and this app has not paired with the hub.
   */
  async prepare(command: string, args: unknown, options: { sign: boolean }): Promise<PreparedRequest> {
    const body = await requestArgs(command, args, () => this.requirePinned().recipient);
    const transaction = randomUUID();
    const now = this.#now();
    this.#seq = Math.max(this.#seq + 1, now);
    if (options.sign) this.#save();
    const request = { v: 2, hub: this.#hubId, base: this.#baseTopic, command, transaction, seq: this.#seq, ts: now, ...body };
    return { command, transaction, bytes: requestEnvelope(request, options.sign ? this.key : undefined) };
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
    const raw = await this.#exchange.exchange(command, bytes, transaction);
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
    const raw = await this.#exchange.exchange('pair', prepared.bytes, prepared.transaction);
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
    const listener: MessageListener = (topic, payload) => {
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
    const raw = await nextMessage(this.#client, this.topics.state, 'state', this.#timeoutMs);
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

  #openResponse(raw: Buffer, pinned: PinnedHub, command: string, transaction: string): Promise<ControlResponse> {
    return openAppReply(raw, pinned, { command, transaction }, this.#identities, this.#now());
  }

  #save(): void {
    if (this.#stateFile === undefined) return;
    const identityFile = this.#identityFile === undefined ? {} : { identityFile: this.#identityFile };
    writeAppState(this.#stateFile, { key: this.key, seq: this.#seq, hubs: this.#hubs, auditHeads: this.#auditHeads.toJSON(), ...identityFile });
  }
}

