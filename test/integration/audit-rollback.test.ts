import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_ANCHOR_FILE, AuditAnchorWriter, auditHeadSignatureValid, readAuditAnchor } from '../../src/audit/audit-anchor.js';
import type { ExportTrailer } from '../../src/audit/audit-export.js';
import { AuditLog, chainHash, GENESIS_HASH } from '../../src/audit/audit-log.js';
import { canonicalJson } from '../../src/audit/canonical.js';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { openDatabase } from '../../src/store/database.js';
import { camveilCli as camveil } from '../harness/hub-process.js';

const HUB = 'rollback-hub';


let root: string;
let dataDir: string;
let configFile: string;
let identity: string;
let identityFile: string;
let broker: EmbeddedBroker;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'camveil-rollback-'));
  dataDir = join(root, 'hub');
  identity = await generateX25519Identity();
  identityFile = join(root, 'household.txt');
  writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
  broker = await startEmbeddedBroker();
  configFile = join(root, 'camveil.yaml');
  writeFileSync(configFile, `hub:\n  id: ${HUB}\n  region: DE\ndataDir: ${dataDir}\nhousehold:\n  recipients:\n    - ${await identityToRecipient(identity)}\nmqtt:\n  url: ${broker.url}\n`);
});

afterAll(async () => {
  await broker?.close();
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

async function startGateway(): Promise<{ gateway: Gateway; incidents: Array<CamveilEvents['incident']> }> {
  const config = validateConfig({ hub: { id: HUB, region: 'DE' }, dataDir, household: { recipients: [await identityToRecipient(identity)] }, mqtt: { url: broker.url } }, 'test', root);
  const gateway = new Gateway({ config, logger: createLogger({ level: 'silent' }) });
  const incidents: Array<CamveilEvents['incident']> = [];
  gateway.bus.on('incident', (e) => incidents.push(e));
  await gateway.start();
  return { gateway, incidents };
}

function newestSeq(): number {
  const db = new Database(join(dataDir, 'camveil.db'), { readonly: true });
  try {
    return (db.prepare('SELECT MAX(seq) AS seq FROM audit').get() as { seq: number }).seq;
  } finally {
    db.close();
  }
}

/** The database files as they are now (the hub is stopped): what an attacker would copy back later. */
function copyDatabase(to: string): void {
  mkdirSync(to, { recursive: true });
  for (const f of ['camveil.db', 'camveil.db-wal', 'camveil.db-shm']) if (existsSync(join(dataDir, f))) copyFileSync(join(dataDir, f), join(to, f));
}

function restoreDatabase(from: string): void {
  for (const f of ['camveil.db', 'camveil.db-wal', 'camveil.db-shm']) {
    rmSync(join(dataDir, f), { force: true });
    if (existsSync(join(from, f))) copyFileSync(join(from, f), join(dataDir, f));
  }
}

/** Reads the retained state until `accept` takes it (an earlier hub's retained state may still be there). */
async function stateWhere(app: AppClient, accept: (state: { audit?: { head: { seq: number } } }) => boolean): Promise<unknown> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const outcome = await app.readState(identity).then(
      (r) => ({ ok: true as const, state: r.state as { audit?: { head: { seq: number } } } }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    if (!outcome.ok) return outcome.error;
    if (accept(outcome.state)) return outcome.state;
    if (Date.now() > deadline) throw new Error('no state the test waited for within 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a rolled-back audit log is detected by audit verify, the hub at start, and the app', () => {
  const clients: MqttClient[] = [];
  afterAll(async () => {
    for (const c of clients) await c.endAsync();
  });

  async function app(): Promise<AppClient> {
    const keys = await loadOrCreateHubKeys(dataDir);
    const client = await mqtt.connectAsync(broker.url);
    clients.push(client);
    // A state file: the app's remembered heads survive from one AppClient (one run of the app) to the next.
    return new AppClient({ client, baseTopic: 'camveil', hubId: HUB, timeoutMs: 20_000, stateFile: join(root, 'app-state.json'), identity, pinned: { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
  }

  it('copies an older database back after the hub went on: verify exits 1, the hub raises an incident and keeps the anchor, the app refuses the state', async () => {
    const first = await startGateway();
    await first.gateway.consent.acceptPolicy('2021-10-31', localRequest('rollback test'));
    await first.gateway.stop();
    const older = newestSeq();
    copyDatabase(join(root, 'older'));

    const second = await startGateway();
    for (let i = 0; i < 4; i++) {
      await second.gateway.consent.grant('localRecording', localRequest(`grant ${i}`));
      await second.gateway.consent.withdraw('localRecording', localRequest(`withdraw ${i}`));
    }
    const anchored = newestSeq();
    expect(anchored).toBeGreaterThan(older + 5);
    // The app sees the hub's signed head in the sealed state, and remembers it.
    const seen = await app();
    const state = (await stateWhere(seen, (s) => s.audit?.head.seq === anchored)) as { audit: { head: { seq: number } } };
    expect(state.audit.head).toMatchObject({ seq: anchored });
    expect(seen.auditHead?.seq).toBe(anchored);
    await second.gateway.stop();
    const anchorText = readFileSync(join(dataDir, AUDIT_ANCHOR_FILE), 'utf8');
    expect(readAuditAnchor(dataDir)?.head).toMatchObject({ seq: anchored });

    const intact = await camveil(['audit', 'verify', '--data-dir', dataDir]);
    expect(intact.code).toBe(0);
    expect(intact.stdout).toContain(`anchor: record ${anchored}, signed by the hub at `);

    // The export ends with the hub's signed heads: checked here offline, from the plaintext alone.
    const out = join(root, 'audit.age');
    expect((await camveil(['audit', 'export', '--config', configFile, '--out', out])).code).toBe(0);
    const lines = (await decryptToBuffer(identity, readFileSync(out))).toString('utf8').trimEnd().split('\n');
    const trailer = JSON.parse(lines.pop()!) as ExportTrailer;
    let prev = GENESIS_HASH;
    const hashes = new Map<number, string>();
    for (const line of lines) {
      const e = JSON.parse(line) as { seq: number; at: string; type: string; details: unknown; prevHash: string; hash: string };
      expect(chainHash(prev, canonicalJson({ seq: e.seq, at: e.at, type: e.type, details: e.details }))).toBe(e.hash);
      hashes.set(e.seq, e.hash);
      prev = e.hash;
    }
    expect(trailer.hubKey).toBe((await loadOrCreateHubKeys(dataDir)).signingPublicKey);
    expect(auditHeadSignatureValid(trailer.exported, trailer.hubKey)).toBe(true);
    expect(trailer.exported.head).toMatchObject({ seq: lines.length, hash: prev });
    expect(auditHeadSignatureValid(trailer.anchor!, trailer.hubKey)).toBe(true);
    expect(hashes.get(trailer.anchor!.head.seq)).toBe(trailer.anchor!.head.hash);
    // The export's own record moved the anchor on by one.
    const afterExport = readAuditAnchor(dataDir)!.head;
    expect(afterExport.seq).toBe(anchored + 1);

    // Someone with the files puts the older database back (the anchor beside it stays).
    restoreDatabase(join(root, 'older'));
    const rolled = await camveil(['audit', 'verify', '--data-dir', dataDir]);
    expect(rolled.code).toBe(1);
    expect(rolled.stderr.trim()).toBe(`CAMVEIL_E_AUDIT_ROLLBACK: audit log rolled back: anchor at ${anchored + 1} but the log ends at record ${older}`);
    const withHead = await camveil(['audit', 'verify', '--data-dir', dataDir, '--head', `${anchored}:${seen.auditHead!.hash}`]);
    expect(withHead.code).toBe(1);

    // The hub starts on it: an incident, and the anchor (the evidence) is not overwritten by its new records.
    const anchorNow = readFileSync(join(dataDir, AUDIT_ANCHOR_FILE), 'utf8');
    expect(anchorNow).not.toBe(anchorText);
    const third = await startGateway();
    try {
      expect(third.incidents).toContainEqual({ reason: 'audit-chain-broken', detail: `audit log rolled back: anchor at ${anchored + 1} but the log ends at record ${older}` });
      expect(newestSeq()).toBeGreaterThan(older);
      expect(readFileSync(join(dataDir, AUDIT_ANCHOR_FILE), 'utf8')).toBe(anchorNow);

      // Another run of the app, with the remembered head from its state file, reads the hub's new state.
      const later = await app();
      const refused = await stateWhere(later, (s) => s.audit !== undefined && s.audit.head.seq !== anchored);
      expect(refused).toMatchObject({ code: 'CAMVEIL_E_AUDIT_ROLLBACK' });
      expect((refused as Error).message).toMatch(new RegExp(`^audit log rolled back: the hub's state shows head \\d+ but this app saw head ${anchored} `));
      expect(later.auditHead?.seq).toBe(anchored);
    } finally {
      await third.gateway.stop();
    }
  }, 240_000);

  it('audit verify exits 1 on a tail deleted with the triggers dropped, as someone with the file would', async () => {
    const dir = join(root, 'cut');
    const keys = await loadOrCreateHubKeys(dir);
    const db = openDatabase(dir);
    const writer = new AuditAnchorWriter({ dataDir: dir, signingKey: keys.signingKey });
    const log = new AuditLog(db, { onAppend: (head) => writer.record(head) });
    expect(writer.check(log)).toEqual({ ok: true });
    for (let i = 0; i < 6; i++) log.append('export', { scope: 'audit', count: i, recipients: 1 });
    db.close();
    const intact = await camveil(['audit', 'verify', '--data-dir', dir]);
    expect(intact.code).toBe(0);
    expect(intact.stdout).toContain('anchor: record 6, signed by the hub at ');
    const cutting = new Database(join(dir, 'camveil.db'));
    cutting.exec('DROP TRIGGER audit_no_delete');
    cutting.prepare('DELETE FROM audit WHERE seq > 4').run();
    cutting.close();
    const cut = await camveil(['audit', 'verify', '--data-dir', dir]);
    expect(cut.code).toBe(1);
    expect(cut.stderr.trim()).toBe('CAMVEIL_E_AUDIT_ROLLBACK: audit log rolled back: anchor at 6 but the log ends at record 4');
  }, 120_000);
});
