import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import type { ControlResponse } from '../../src/control/command.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { Pairing } from '../../src/control/pairing.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { openDatabase } from '../../src/store/database.js';
import { waitFor } from '../harness/wait.js';

let root: string;
let identity: string;
let recipient: string;
let broker: EmbeddedBroker;
const running: Gateway[] = [];
const clients: MqttClient[] = [];
const apps: AppClient[] = [];

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'camveil-incidents-'));
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  broker = await startEmbeddedBroker();
});

afterEach(async () => {
  for (const a of apps.splice(0)) await a.stop();
  for (const c of clients.splice(0)) await c.endAsync();
  for (const g of running.splice(0)) await g.stop();
});

afterAll(async () => {
  await broker?.close();
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

function configFor(hubId: string, extra: object = {}) {
  return validateConfig({ hub: { id: hubId, region: 'DE' }, dataDir: join(root, hubId), household: { recipients: [recipient] }, mqtt: { url: broker.url }, ...extra }, 'test', root);
}

async function startGateway(hubId: string, extra: object = {}): Promise<{ gateway: Gateway; incidents: Array<CamveilEvents['incident']> }> {
  const gateway = new Gateway({ config: configFor(hubId, extra), logger: createLogger({ level: 'silent' }) });
  const incidents: Array<CamveilEvents['incident']> = [];
  gateway.bus.on('incident', (e) => incidents.push(e));
  await gateway.start();
  running.push(gateway);
  return { gateway, incidents };
}

/** An app that pinned the hub's keys but was never paired: everything it signs is refused. */
async function strangerApp(hubId: string): Promise<{ app: AppClient; security: Array<{ reason: string; suppressed?: number }> }> {
  const keys = await loadOrCreateHubKeys(join(root, hubId));
  const client = await mqtt.connectAsync(broker.url);
  clients.push(client);
  const app = new AppClient({ client, baseTopic: 'camveil', hubId, timeoutMs: 20_000, identity, pinned: { hubId, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
  await app.start();
  apps.push(app);
  const security: Array<{ reason: string; suppressed?: number }> = [];
  // The household's phone follows the sealed events (sealed to the household recipient).
  await app.followEvents(identity, (e) => {
    const event = e as { type?: string; reason?: string; suppressed?: number };
    if (event.type === 'security' && event.reason !== undefined) security.push({ reason: event.reason, ...(event.suppressed === undefined ? {} : { suppressed: event.suppressed }) });
  });
  return { app, security };
}

async function answered(app: AppClient): Promise<void> {
  let r: ControlResponse | undefined;
  for (let i = 0; r === undefined && i < 20; i++) r = await app.request('status', {}, { sign: false }).catch(() => undefined);
  expect(r?.status).toBe('ok');
}

function auditedIncidents(dataDir: string): Array<{ reason: string; suppressed?: number }> {
  const db = new Database(join(dataDir, 'camveil.db'), { readonly: true });
  try {
    const rows = db.prepare("SELECT record FROM audit WHERE type = 'incident' ORDER BY seq").all() as Array<{ record: string }>;
    return rows.map((r) => (JSON.parse(r.record) as { details: { reason: string; suppressed?: number } }).details);
  } finally {
    db.close();
  }
}

describe('security incidents reach the household, audited and rate-limited', () => {
  it('bad-signatures: a burst of requests signed by an unknown key is one sealed event and one audit record, however long it lasts', async () => {
    const { incidents } = await startGateway('sig-hub');
    const { app, security } = await strangerApp('sig-hub');
    await answered(app);
    for (let i = 0; i < 4; i++) expect((await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: true })).status).toBe('error');
    expect(incidents).toEqual([]);
    expect(await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: true })).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_UNKNOWN_KEY' } });
    expect(incidents.map((i) => i.reason)).toEqual(['bad-signatures']);
    await waitFor('the sealed security event', () => security.length === 1, 30_000);
    // The flood goes on: still one incident (the monitor is quiet for a window, the limiter for a minute).
    for (let i = 0; i < 12; i++) await app.request('faces/list', {}, { sign: true });
    expect(incidents).toHaveLength(1);
    expect(auditedIncidents(join(root, 'sig-hub'))).toEqual([{ reason: 'bad-signatures' }]);
    // A status after the flood is answered (the hub is fine); no second security event arrived before it.
    await answered(app);
    expect(security).toEqual([{ reason: 'bad-signatures' }]);
  }, 120_000);

  it('bad-pairing-proofs: three wrong pairing proofs within ten minutes are an incident', async () => {
    const { incidents } = await startGateway('pair-hub');
    const db = openDatabase(join(root, 'pair-hub'));
    try {
      new Pairing(db).createPairingCode(Date.now());
    } finally {
      db.close();
    }
    const { app, security } = await strangerApp('pair-hub');
    await answered(app);
    for (let i = 0; i < 3; i++) {
      const r = await app.pair('ZZZZZZZZ', recipient).catch((error: unknown) => error);
      expect(JSON.stringify(r)).toContain('CAMVEIL_E_PAIRING_FAILED');
    }
    expect(incidents.map((i) => i.reason)).toEqual(['bad-pairing-proofs']);
    await waitFor('the sealed security event', () => security.some((s) => s.reason === 'bad-pairing-proofs'), 30_000);
    expect(auditedIncidents(join(root, 'pair-hub'))).toEqual([{ reason: 'bad-pairing-proofs' }]);
  }, 120_000);

  it('audit-chain-broken and key-file-permissions: found at start, audited, told once the broker connects', async () => {
    const token = join(root, 'token');
    writeFileSync(token, 'incident-token\n', { mode: 0o600 });
    const uplink = { uplink: { enabled: true, endpoints: { eu: 'http://127.0.0.1:9' }, tokenFile: token } };
    const first = await startGateway('start-hub', uplink);
    await first.gateway.consent.acceptPolicy('2021-10-31', localRequest('incidents test'));
    expect(first.incidents).toEqual([]);
    await first.gateway.stop();
    running.splice(0);
    // Someone with the database edits an audit record (the triggers do not stop them), and loosens the token file.
    const db = new Database(join(root, 'start-hub', 'camveil.db'));
    db.exec('DROP TRIGGER audit_no_update');
    db.prepare("UPDATE audit SET record = replace(record, '2021-10-31', '2020-01-01') WHERE type = 'policy.accepted'").run();
    db.close();
    chmodSync(token, 0o644);
    // The phone is listening before the hub comes back.
    const { app, security } = await strangerApp('start-hub');
    const second = await startGateway('start-hub', uplink);
    expect(second.incidents.map((i) => i.reason).sort()).toEqual(['audit-chain-broken', 'key-file-permissions']);
    // The detail names what, never a path.
    expect(second.incidents.find((i) => i.reason === 'key-file-permissions')?.detail).toContain('uplink.tokenFile');
    expect(JSON.stringify(second.incidents)).not.toContain(root);
    expect(auditedIncidents(join(root, 'start-hub')).map((d) => d.reason).sort()).toEqual(['audit-chain-broken', 'key-file-permissions']);
    await answered(app);
    await waitFor('both sealed security events', () => security.length === 2, 30_000);
    expect(security.map((s) => s.reason).sort()).toEqual(['audit-chain-broken', 'key-file-permissions']);
  }, 120_000);
});
