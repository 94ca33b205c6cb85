import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';

/** A broker on loopback for integration tests. */
export interface TestBroker {
  kind: BrokerKind;
  url: string;
  port: number;
  stop(): Promise<void>;
}

export type BrokerKind = 'aedes' | 'mosquitto';

/** A TCP port free on 127.0.0.1 right now (the OS picks it; a race with another process is possible but rare). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, timeoutMs: number, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    const reason = exited();
    if (reason !== undefined) throw new Error(`broker exited before listening: ${reason}`);
    if (Date.now() > deadline) throw new Error(`broker did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function mosquittoBinary(): string {
  return spawnSync('mosquitto', ['-h'], { stdio: 'ignore' }).error === undefined ? 'mosquitto' : '/usr/sbin/mosquitto';
}

/** Debian mosquitto 2 on a free loopback port, anonymous, no persistence, with a generated config file. */
/** Starts Debian's mosquitto on 127.0.0.1 (no persistence); pass the old `port` to restart a broker where clients expect it. */
export async function startMosquitto(options: { port?: number } = {}): Promise<TestBroker> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'camveil-mosquitto-'));
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(config, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n`);
  const child: ChildProcess = spawn(mosquittoBinary(), ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exit: string | undefined;
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.on('exit', (code, signal) => (exit = `code ${code} signal ${signal} ${stderr.trim()}`));
  try {
    await waitForPort(port, 10_000, () => exit);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    kind: 'mosquitto',
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: async () => {
      if (exit === undefined) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An embedded aedes broker on a free loopback port (`net.createServer(aedes.handle)`). */
export async function startAedes(): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    kind: 'aedes',
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function startBroker(kind: BrokerKind): Promise<TestBroker> {
  return kind === 'aedes' ? startAedes() : startMosquitto();
}
