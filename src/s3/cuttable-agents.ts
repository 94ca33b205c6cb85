import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { createConnection, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';

/**
 * The connection pools of one S3 client, kept so that every TCP connection can be cut with a reset. A socket
 * that is only destroyed still sends what the kernel holds for it (with a slow store, megabytes of a part
 * already written) before its FIN; a reset (RST) drops that at once, so after a withdrawal returns not one
 * more byte of the object leaves the hub. For https the TLS session runs over a TCP socket made here, so
 * the reset reaches the TCP layer under it.
 */
export class CuttableAgents {
  readonly #sockets = new Set<Socket>();
  readonly http: HttpAgent;
  readonly https: HttpsAgent;

  constructor() {
    const track = (socket: Socket): Socket => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      return socket;
    };
    this.http = new (class extends HttpAgent {
      override createConnection(options: object): Duplex {
        return track(createConnection(options as NetConnectOpts));
      }
    })({ keepAlive: true });
    this.https = new (class extends HttpsAgent {
      override createConnection(options: object): Duplex {
        const o = options as ConnectionOptions & { host?: string; port?: number };
        const raw = track(createConnection({ host: o.host ?? 'localhost', port: o.port ?? 443 }));
        return tlsConnect({ ...o, socket: raw });
      }
    })({ keepAlive: true });
  }

  /** Resets every connection of the pools now (in use or idle); requests on them fail at once. */
  cutAll(): void {
    for (const socket of this.#sockets) {
      this.#sockets.delete(socket);
      try {
        if (!socket.destroyed) socket.resetAndDestroy();
      } catch {
        socket.destroy();
      }
    }
  }

  /** Closes the pools (idle connections end). */
  destroy(): void {
    this.http.destroy();
    this.https.destroy();
  }
}
