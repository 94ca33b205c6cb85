import { randomUUID, type KeyObject } from 'node:crypto';
import { encryptToBuffer } from '../crypto/age-stream.js';
import { asCamveilError, CamveilError } from '../errors.js';
import { builtinCommands } from './builtin-commands.js';
import type { CommandContext, CommandHandler, ControlAudit, ControlLogger, ControlResponse } from './command.js';
import { issueText, openSealedArgs, salvageTransaction, verifyRequest } from './envelope.js';
import type { KeyRegistry } from './key-registry.js';
import { HUB_PROTOCOL_VERSION, signHubMessage, type HubHealth, type HubSigner } from './hub-message.js';
import { padJson } from './padding.js';
import { Pairing } from './pairing.js';
import { RefusalBudget } from './refusal-budget.js';
import { sealReply, type WireResponse } from './sealed-reply.js';
import { assertNoSecrets } from './state-guard.js';
import { AVAILABILITY_OFFLINE, AVAILABILITY_ONLINE, commandOfTopic, hubTopics, responseTopic, type HubTopics } from './topics.js';

type MessageListener = (topic: string, payload: Buffer, packet: { retain?: boolean }) => void;

/** The part of an MQTT.js `MqttClient` the control plane uses (tests pass an in-memory fake). */
export interface ControlClient {
  publishAsync(topic: string, message: string | Buffer, opts?: { qos?: 0 | 1 | 2; retain?: boolean }): Promise<unknown>;
  subscribeAsync(topic: string, opts?: { qos: 0 | 1 | 2 }): Promise<unknown>;
  unsubscribeAsync(topic: string): Promise<unknown>;
  on(event: 'message', listener: MessageListener): unknown;
  on(event: 'connect', listener: () => void): unknown;
  removeListener(event: 'message', listener: MessageListener): unknown;
  removeListener(event: 'connect', listener: () => void): unknown;
}

export interface ControlPlaneOptions {
  /** Created with `connectOptions(baseTopic, hubId)` merged in, so its last will is `offline`. */
  client: ControlClient;
  baseTopic: string;
  /** The hub id from the configuration, as in `camveil/<hubId>/…`. */
  hubId: string;
  registry: KeyRegistry;
  audit: ControlAudit;
  /** Commands besides the built-in ones; a name that is built in is refused. */
  handlers?: Record<string, CommandHandler>;
  logger: ControlLogger;
  /**
   * The hub's own keys: every reply, event and state is signed with `signingKey`; the app pins it and
   * `recipient` at pairing and seals request args to that recipient, which `identity` opens.
   */
  hub: { signingKey: KeyObject; signingPublicKey: string; recipient: string; identity: string };
  /** Who events and the sealed state are sealed to (default: the paired phones' recipients). */
  recipients?: () => readonly string[];
  /** The hub clock in Unix milliseconds (tests inject one). */
  now?: () => number;
  /** The full state: sealed to `recipients` in `status` replies and in the retained `state`. */
  getState?: () => object;
  /** Per camera pseudonym, its health: the only per-camera fact in clear. */
  getHealth?: () => HubHealth['cameras'];
  /** Defaults to a Pairing on the registry's database. */
  pairing?: Pairing;
  /** Told the error code of every refused request (bursts of bad signatures or pairing proofs are incidents). */
  onRefused?: (code: string) => void;
  /** How many refused requests a second get an answer (refusal-budget.ts; default 10 a second, bursts of 30). */
  refusalBudget?: RefusalBudget;
}

/**
 * The hub's side of the MQTT API: checks every request, runs its command, and answers exactly once on
 * `response/<command>`, whatever arrives. The broker is not trusted: it can publish, drop and replay
 * anything, so a command that widens data flow runs only with a signature by a paired, unrevoked key, with a
 * fresh sequence number. Arguments arrive sealed to the hub's recipient (envelope.ts) and are opened here,
 * after the signature checks. A refused request changes nothing (its sequence number is not even recorded).
 * Everything the hub publishes to the app (replies, events, state) is signed with the hub key the app pinned
 * at pairing (hub-message.ts), so the broker cannot answer in the hub's name either; a reply's result and
 * error message are sealed to the household and the paired phones (sealed-reply.ts), so the broker reading
 * `response/#` learns a command's status and error code, never what it returned.
 */
export class ControlPlane {
  readonly #client: ControlClient;
  readonly #topics: HubTopics;
  readonly #registry: KeyRegistry;
  readonly #logger: ControlLogger;
  readonly #now: () => number;
  readonly #getState: () => object;
  readonly #getHealth: () => HubHealth['cameras'];
  readonly #recipients: () => readonly string[];
  readonly #signer: HubSigner;
  readonly #identity: string;
  readonly #onRefused: ((code: string) => void) | undefined;
  readonly #refusalBudget: RefusalBudget;
  readonly #handlers = new Map<string, CommandHandler>();
  readonly #onMessage: MessageListener = (topic, payload, packet) => void this.handle(topic, payload, packet.retain === true);
  readonly #onConnect = (): void => void this.#publishAvailability(AVAILABILITY_ONLINE);
  #started = false;

  constructor(options: ControlPlaneOptions) {
    this.#client = options.client;
    this.#topics = hubTopics(options.baseTopic, options.hubId);
    this.#registry = options.registry;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#getState = options.getState ?? (() => ({}));
    this.#getHealth = options.getHealth ?? (() => ({}));
    this.#recipients = options.recipients ?? (() => options.registry.activeRecipients());
    this.#onRefused = options.onRefused;
    this.#refusalBudget = options.refusalBudget ?? new RefusalBudget();
    this.#identity = options.hub.identity;
    this.#signer = { hubId: options.hubId, baseTopic: options.baseTopic, signingKey: options.hub.signingKey, signingPublicKey: options.hub.signingPublicKey };
    const builtins = builtinCommands({
      registry: options.registry,
      pairing: options.pairing ?? new Pairing(options.registry.db),
      audit: options.audit,
      hub: { hubId: options.hubId, baseTopic: options.baseTopic, signingKey: options.hub.signingPublicKey, recipient: options.hub.recipient },
      status: () => this.#statusData(),
    });
    for (const [name, handler] of [...Object.entries(builtins), ...Object.entries(options.handlers ?? {})]) {
      if (this.#handlers.has(name)) throw new CamveilError('CAMVEIL_E_INTERNAL', `command ${name} is registered twice`, { where: 'control' });
      this.#handlers.set(name, handler);
    }
  }

  get topics(): HubTopics {
    return this.#topics;
  }

  /** Subscribes to `request/#` and publishes the retained `online`; again on every reconnect. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#client.on('message', this.#onMessage);
    this.#client.on('connect', this.#onConnect);
    await this.#client.subscribeAsync(this.#topics.requestFilter, { qos: 1 });
    await this.#publishAvailability(AVAILABILITY_ONLINE);
  }

  /**
   * Stops answering and publishes the retained `offline` (best effort: a lost connection leaves the last will
   * to say it). Does not close the client (its owner does).
   */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#client.removeListener('message', this.#onMessage);
    this.#client.removeListener('connect', this.#onConnect);
    try {
      await this.#client.unsubscribeAsync(this.#topics.requestFilter);
    } catch (error) {
      this.#logger.warn({ code: asCamveilError(error).code }, 'request topics could not be unsubscribed');
    }
    await this.#publishAvailability(AVAILABILITY_OFFLINE);
  }

  /**
   * Clear health and the full state sealed (padded) to the recipients: what `status` replies and what
   * `state` carries. No recipients, no sealed part (there is nobody to seal it to).
   *
   * @throws CamveilError `CAMVEIL_E_STATE_UNSAFE` when the full state looks like it holds a secret.
   */
  async snapshot(): Promise<{ health: HubHealth; sealed?: string }> {
    const full = this.#getState();
    assertNoSecrets(full);
    const health: HubHealth = { availability: AVAILABILITY_ONLINE, protocol: HUB_PROTOCOL_VERSION, cameras: this.#getHealth() };
    const recipients = [...new Set(this.#recipients())];
    if (recipients.length === 0) return { health };
    const sealed = await encryptToBuffer(recipients, padJson(full));
    return { health, sealed: sealed.toString('base64') };
  }

  /**
   * The `status` reply's result: health and the full state, in one piece; the reply path seals it (like every
   * reply) to the household and the paired phones.
   *
   * @throws CamveilError `CAMVEIL_E_STATE_UNSAFE` when the full state looks like it holds a secret.
   */
  #statusData(): { health: HubHealth; state: object } {
    const state = this.#getState();
    assertNoSecrets(state);
    return { health: { availability: AVAILABILITY_ONLINE, protocol: HUB_PROTOCOL_VERSION, cameras: this.#getHealth() }, state };
  }

  /**
   * Publishes the signed `state` retained: health in clear, everything else sealed.
   *
   * @throws CamveilError `CAMVEIL_E_STATE_UNSAFE` when the state looks like it holds a secret; nothing is published.
   */
  async publishState(): Promise<void> {
    const snapshot = await this.snapshot();
    const bytes = signHubMessage(this.#signer, 'state', snapshot, this.#now());
    await this.#client.publishAsync(this.#topics.state, bytes, { qos: 1, retain: true });
  }

  /**
   * Seals `event` (JSON, padded to a fixed bucket) with age to the recipients and publishes it signed on
   * `event`, not retained. Returns false (publishing nothing) when there is nobody to seal it to.
   */
  async publishEvent(event: object): Promise<boolean> {
    const recipients = [...new Set(this.#recipients())];
    if (recipients.length === 0) return false;
    const sealed = await encryptToBuffer(recipients, padJson(event));
    const bytes = signHubMessage(this.#signer, 'event', { id: randomUUID(), sealed: sealed.toString('base64') }, this.#now());
    await this.#client.publishAsync(this.#topics.event, bytes, { qos: 1, retain: false });
    return true;
  }

  /**
   * Handles one message from `request/#`: exactly one reply, never a rejection (handler errors become error
   * replies), except refusals past the refusal budget, which get none. Exposed for tests that feed messages
   * without a broker.
   */
  async handle(topic: string, payload: Buffer, retained = false): Promise<void> {
    const command = commandOfTopic(this.#topics, topic);
    let transaction: string | undefined;
    let response: ControlResponse;
    let signer: string | undefined;
    try {
      if (retained) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', 'retained requests are not accepted', { where: 'request' });
      const now = this.#now();
      const request = verifyRequest(payload, this.#registry, now, { hubId: this.#signer.hubId, baseTopic: this.#signer.baseTopic }, { commitSeq: false });
      transaction = request.transaction;
      signer = request.signer;
      if (request.command !== command) {
        throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', 'payload command does not match the request topic', { where: 'command' });
      }
      const handler = this.#handlers.get(command);
      if (handler === undefined) throw new CamveilError('CAMVEIL_E_UNKNOWN_COMMAND', `unknown command ${command}`, { where: 'command' });
      if (handler.requires === 'signature' && request.signer === undefined) {
        throw new CamveilError('CAMVEIL_E_NOT_AUTHORISED', `${command} must be signed by a paired app key`, { where: 'sig' });
      }
      // Opened only once the cheap checks passed; an undecryptable blob is refused before anything runs.
      const clearOrOpened = request.sealedArgs === undefined ? request.args : await openSealedArgs(request.sealedArgs, this.#identity);
      const args = handler.args.safeParse(clearOrOpened);
      if (!args.success) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `args: ${issueText(args.error)}`, { where: 'args' });
      // Recorded only now, in one UPDATE that refuses a reused number: a refused request leaves no trace.
      if (request.signer !== undefined) this.#registry.recordSeq(request.signer, request.seq);
      const ctx: CommandContext = { signer: request.signer, transaction: request.transaction, digest: request.digest, now };
      const data: unknown = await handler.run(args.data, ctx);
      response = { data: data ?? {}, status: 'ok', ...(transaction === undefined ? {} : { transaction }) };
    } catch (error) {
      transaction ??= salvageTransaction(payload);
      response = this.#errorResponse(error, transaction);
      this.#onRefused?.(response.status === 'error' ? response.error.code : 'CAMVEIL_E_INTERNAL');
      if (!this.#refusalBudget.take()) {
        this.#logger.debug({ command: command.slice(0, 64), code: response.status === 'error' ? response.error.code : undefined }, 'refused request left unanswered: refusal budget spent');
        return;
      }
    }
    await this.#reply(command, response, signer);
  }

  #errorResponse(error: unknown, transaction: string | undefined): ControlResponse {
    const known = error instanceof CamveilError && error.code !== 'CAMVEIL_E_INTERNAL';
    const e = asCamveilError(error, 'control');
    if (!known) this.#logger.error({ code: e.code, errorType: error instanceof Error ? error.name : typeof error }, 'control command failed unexpectedly');
    // The text of an unexpected error may quote anything (arguments, paths): it stays on the hub.
    const message = known ? e.message : 'internal error (see the hub log)';
    return { data: {}, status: 'error', error: { code: e.code, message }, ...(transaction === undefined ? {} : { transaction }) };
  }

  /**
   * Every reply leaves here, and only here: sealed (sealed-reply.ts: result and error message sealed and padded
   * to the household and the active paired phones, status and error code in clear; `pair` alone in clear),
   * then signed for this hub, command and transaction.
   */
  async #reply(command: string, response: ControlResponse, signer: string | undefined): Promise<void> {
    let body: Buffer;
    try {
      body = await this.#signedReply(command, response);
    } catch (error) {
      // A reply that cannot be sealed or signed (a bad recipient, a result JSON cannot hold) becomes an error
      // reply; should even that fail, the code alone goes out, with nothing to seal.
      const fallback = this.#errorResponse(error, response.transaction);
      body = await this.#signedReply(command, fallback).catch(() => {
        const wire: WireResponse = { status: 'error', ...(response.transaction === undefined ? {} : { transaction: response.transaction }), error: { code: 'CAMVEIL_E_INTERNAL' } };
        return signHubMessage(this.#signer, 'response', { command, response: wire }, this.#now());
      });
    }
    const code = response.status === 'error' ? response.error.code : undefined;
    this.#logger.debug({ command: command.slice(0, 64), status: response.status, code, signer }, 'control request');
    try {
      await this.#client.publishAsync(responseTopic(this.#topics, command), body, { qos: 1, retain: false });
    } catch (error) {
      this.#logger.warn({ code: asCamveilError(error).code }, 'control reply could not be published');
    }
  }

  async #signedReply(command: string, response: ControlResponse): Promise<Buffer> {
    const wire = await sealReply(command, response, [...new Set(this.#recipients())]);
    return signHubMessage(this.#signer, 'response', { command, response: wire }, this.#now());
  }

  async #publishAvailability(value: string): Promise<void> {
    try {
      await this.#client.publishAsync(this.#topics.availability, value, { qos: 1, retain: true });
    } catch (error) {
      this.#logger.warn({ code: asCamveilError(error).code }, 'availability could not be published');
    }
  }
}
