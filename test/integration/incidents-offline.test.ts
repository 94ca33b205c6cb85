import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import os from 'node:os';
import path, { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Database from 'better-sqlite3';
import { Aedes } from 'aedes';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { waitFor } from '../harness/wait.js';

/**
 * A security incident raised while the broker is unreachable is kept — in the hub's database, sealed with age
 * before it is written — and told to the household once a broker is back: after the same hub reconnects, and
 * after a restart of the hub. Real aedes brokers on loopback, stopped and started again on the same port; the
 * restarted one holds the hub's CONNECT until the household's phone has subscribed, so the test does not
 * depend on who reconnects first.
 */

interface GatedBroker {
  url: string;
  port: number;
  /** Lets the hub's connection through (it waits in preConnect until then). */
  admitHub(): void;
  stop(): Promise<void>;
}

async function startGatedBroker(options: { port?: number; holdHub?: boolean } = {}): Promise<GatedBroker> {
  let admit: () => void = () => undefined;
  const admitted = options.holdHub === true ? new Promise<void>((resolve) => (admit = resolve)) : Promise.resolve();
  const aedes = await Aedes.createBroker({
    preConnect: (client, packet, done) => {
      if (packet.clientId.startsWith('camveil-')) void admitted.then(() => done(null, true));
      else done(null, true);
    },
  });
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    admitHub: () => admit(),
    stop: async () => {
      admit();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let root: string;
let identity: string;
let recipient: string;
const brokers: GatedBroker[] = [];
const clients: MqttClient[] = [];
const apps: AppClient[] = [];
const running: Gateway[] = [];

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'camveil-incidents-offline-'));
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
});

afterEach(async () => {
  for (const a of apps.splice(0)) await a.stop().catch(() => undefined);
  for (const c of clients.splice(0)) await c.endAsync(true);
  for (const g of running.splice(0)) await g.stop();
  for (const b of brokers.splice(0)) await b.stop();
});

afterAll(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

/** A gateway whose log lines are collected (JSON), to see when its MQTT client has lost the broker. */
async function startGateway(hubId: string, url: string): Promise<{ gateway: Gateway; logs: string[] }> {
  const config = validateConfig({ hub: { id: hubId, region: 'DE' }, dataDir: join(root, hubId), household: { recipients: [recipient] }, mqtt: { url } }, 'test', root);
  const logs: string[] = [];
  const destination = new PassThrough();
  destination.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter((l) => l !== '')));
  const gateway = new Gateway({ config, logger: createLogger({ level: 'warn', destination }) });
  await gateway.start();
  running.push(gateway);
  return { gateway, logs };
}

/** The household's phone on `url`, following the hub's sealed events. */
async function follow(hubId: string, url: string): Promise<Array<{ type?: string; reason?: string; detail?: string }>> {
  const keys = await loadOrCreateHubKeys(join(root, hubId));
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  clients.push(client);
  const app = new AppClient({ client, baseTopic: 'camveil', hubId, timeoutMs: 30_000, identity, pinned: { hubId, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
  apps.push(app);
  const events: Array<{ type?: string; reason?: string; detail?: string }> = [];
  await app.followEvents(identity, (e) => events.push(e as { type?: string; reason?: string; detail?: string }));
  return events;
}

/** The kept rows, read through a second connection as anyone with the file would. */
function keptRows(hubId: string): Buffer[] {
  const db = new Database(join(root, hubId, 'camveil.db'), { readonly: true });
  try {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'control_pending_incidents'").get();
    if (exists === undefined) return [];
    return (db.prepare('SELECT sealed FROM control_pending_incidents ORDER BY seq').all() as Array<{ sealed: Buffer }>).map((r) => r.sealed);
  } finally {
    db.close();
  }
}

/** A reconnect attempt refused by the closed port: by then the hub's client knows it is disconnected. */
const lostBroker = (logs: string[]) => logs.some((l) => l.includes('mqtt: connection problem') && l.includes('ECONNREFUSED'));

describe('security incidents while the broker is unreachable', () => {
  it('are kept sealed in the database and told when the hub reconnects', async () => {
    const first = await startGatedBroker();
    brokers.push(first);
    const { gateway, logs } = await startGateway('offline-hub', first.url);
    const early = await follow('offline-hub', first.url);
    // The hub is connected: an incident now goes straight out and nothing is kept.
    gateway.bus.emit('incident', { reason: 'bad-signatures', detail: '5 refused within 60 s' });
    await waitFor('the live security event', () => early.some((e) => e.reason === 'bad-signatures'), 30_000);
    expect(keptRows('offline-hub')).toEqual([]);

    await first.stop();
    brokers.splice(0);
    await waitFor('the hub to notice the broker is gone', () => lostBroker(logs), 60_000);
    gateway.bus.emit('incident', { reason: 'model-tampered', detail: 'faces disabled: a model file does not match its digest' });
    gateway.bus.emit('incident', { reason: 'unsigned-stop', detail: 'cloudUpload stopped by an unsigned withdrawal; nothing deleted' });
    await waitFor('two kept incidents', () => keptRows('offline-hub').length === 2, 30_000);
    const dbFile = join(root, 'offline-hub', 'camveil.db');
    const file = Buffer.concat([readFileSync(dbFile), existsSync(`${dbFile}-wal`) ? readFileSync(`${dbFile}-wal`) : Buffer.alloc(0)]);
    for (const sealed of keptRows('offline-hub')) expect(sealed.subarray(0, 21).toString('latin1')).toBe('age-encryption.org/v1');
    // The reasons are in the audit log by design (type incident); the events' texts are only in the sealed rows.
    for (const clear of ['faces disabled: a model file', 'cloudUpload stopped by an unsigned']) expect(file.includes(clear), clear).toBe(false);

    const second = await startGatedBroker({ port: first.port, holdHub: true });
    brokers.push(second);
    const late = await follow('offline-hub', second.url);
    second.admitHub();
    await waitFor('both kept incidents', () => late.filter((e) => e.type === 'security').length >= 2, 60_000);
    expect(late.filter((e) => e.type === 'security').map((e) => e.reason)).toEqual(['model-tampered', 'unsigned-stop']);
    expect(late.find((e) => e.reason === 'model-tampered')?.detail).toBe('faces disabled: a model file does not match its digest');
    await waitFor('the kept rows to go once told', () => keptRows('offline-hub').length === 0, 30_000);
  }, 180_000);

  it('survive a restart of the hub and are told by the next run', async () => {
    const first = await startGatedBroker();
    const port = first.port;
    brokers.push(first);
    const { gateway, logs } = await startGateway('restart-hub', first.url);
    await first.stop();
    brokers.splice(0);
    await waitFor('the hub to notice the broker is gone', () => lostBroker(logs), 60_000);
    gateway.bus.emit('incident', { reason: 'model-tampered', detail: 'kept across a restart' });
    await waitFor('the kept incident', () => keptRows('restart-hub').length === 1, 30_000);
    await gateway.stop();
    running.splice(0);
    expect(keptRows('restart-hub')).toHaveLength(1);

    const second = await startGatedBroker({ port, holdHub: true });
    brokers.push(second);
    const events = await follow('restart-hub', second.url);
    second.admitHub();
    await startGateway('restart-hub', second.url);
    await waitFor('the incident kept by the previous run', () => events.some((e) => e.reason === 'model-tampered'), 60_000);
    expect(events.find((e) => e.reason === 'model-tampered')?.detail).toBe('kept across a restart');
    await waitFor('the kept row to go once told', () => keptRows('restart-hub').length === 0, 30_000);
  }, 180_000);
});
