import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';

/**
 * A hostile broker for tests: a man-in-the-middle MQTT proxy on loopback between clients (the app) and a
 * real broker (aedes or mosquitto). It parses every packet both ways (mqtt-packet), records every byte,
 * and lets a test rewrite, forge, drop, replay and inject packets — what whoever runs the broker can do.
 *
 * Packets are re-generated after parsing, so a pass-through packet is the same MQTT packet, not always the
 * same bytes (e.g. property order); the recorded bytes are what actually crossed each socket.
 */
export type Direction = 'toBroker' | 'toClient';

/**
 * Called for every packet; returns what to forward instead: `undefined` to forward it unchanged, `null` or
 * `[]` to drop it, a packet or packets to forward in its place.
 */
export type Tamper = (packet: Packet, direction: Direction, connection: MitmConnection) => Packet | Packet[] | null | undefined;

export interface Recorded {
  connection: number;
  direction: Direction;
  bytes: Buffer;
}

/** One client connection through the proxy, with its upstream connection to the real broker. */
export class MitmConnection {
  readonly id: number;
  /** PUBLISH packets seen, both ways, in order (to replay later). */
  readonly publishes: Array<{ direction: Direction; packet: IPublishPacket }> = [];
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #record: (entry: Recorded) => void;
  /** Shared with both parsers (they keep the object): the CONNECT's protocol version is written into it. */
  readonly #options: { protocolVersion: number } = { protocolVersion: 4 };

  constructor(id: number, client: Socket, upstream: Socket, proxy: MitmBroker) {
    this.id = id;
    this.#client = client;
    this.#upstream = upstream;
    this.#record = (entry) => proxy.recorded.push(entry);
    const toBroker = mqttPacket.parser(this.#options);
    const toClient = mqttPacket.parser(this.#options);
    const handle = (direction: Direction) => (packet: Packet) => {
      if (packet.cmd === 'connect' && typeof packet.protocolVersion === 'number') {
        this.#options.protocolVersion = packet.protocolVersion;
      }
      if (packet.cmd === 'publish') this.publishes.push({ direction, packet: { ...packet, payload: Buffer.from(packet.payload as Buffer) } });
      const replaced = proxy.tamper?.(packet, direction, this);
      const out = replaced === undefined ? [packet] : replaced === null ? [] : Array.isArray(replaced) ? replaced : [replaced];
      for (const p of out) this.#write(direction, p, false);
    };
    toBroker.on('packet', handle('toBroker'));
    toClient.on('packet', handle('toClient'));
    client.on('data', (chunk: Buffer) => {
      this.#record({ connection: id, direction: 'toBroker', bytes: Buffer.from(chunk) });
      toBroker.parse(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      this.#record({ connection: id, direction: 'toClient', bytes: Buffer.from(chunk) });
      toClient.parse(chunk);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }

  destroy(): void {
    this.#client.destroy();
    this.#upstream.destroy();
  }

  /** Sends a packet the client never sent to the broker (or the broker never sent to the client). */
  inject(direction: Direction, packet: Packet): void {
    this.#write(direction, packet, true);
  }

  /** A forged PUBLISH (QoS 0, so no acknowledgement crosses) towards the client or the broker. */
  forgePublish(direction: Direction, topic: string, payload: Buffer | string, retain = false): void {
    this.inject(direction, { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain, dup: false });
  }

  #write(direction: Direction, packet: Packet, injected: boolean): void {
    const bytes = mqttPacket.generate(packet, this.#options);
    if (injected) this.#record({ connection: this.id, direction, bytes });
    (direction === 'toBroker' ? this.#upstream : this.#client).write(bytes);
  }
}

export class MitmBroker {
  readonly recorded: Recorded[] = [];
  readonly connections: MitmConnection[] = [];
  tamper: Tamper | undefined;
  readonly #server: Server;
  readonly #upstreamPort: number;
  #port = 0;

  private constructor(server: Server, upstreamPort: number) {
    this.#server = server;
    this.#upstreamPort = upstreamPort;
  }

  /** A proxy on 127.0.0.1 (a free port) in front of the broker on `upstreamPort`. */
  static async start(upstreamPort: number): Promise<MitmBroker> {
    const server = createServer();
    const proxy = new MitmBroker(server, upstreamPort);
    server.on('connection', (client) => {
      const upstream = createConnection(proxy.#upstreamPort, '127.0.0.1');
      client.pause();
      upstream.once('connect', () => client.resume());
      proxy.connections.push(new MitmConnection(proxy.connections.length + 1, client, upstream, proxy));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy.#port = (server.address() as AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.#port}`;
  }

  /** Every byte recorded, both ways, in order. */
  traffic(): Buffer {
    return Buffer.concat(this.recorded.map((r) => r.bytes));
  }

  /** Every PUBLISH seen on every connection. */
  publishes(): Array<{ connection: number; direction: Direction; packet: IPublishPacket }> {
    return this.connections.flatMap((c) => c.publishes.map((p) => ({ connection: c.id, ...p })));
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
