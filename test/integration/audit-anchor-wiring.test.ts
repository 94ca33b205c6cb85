import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditHeadSignatureValid, readAuditAnchor } from '../../src/audit/audit-anchor.js';
import type { ExportTrailer } from '../../src/audit/audit-export.js';
import { AuditLog, chainHash, GENESIS_HASH, type AuditHead } from '../../src/audit/audit-log.js';
import { canonicalJson } from '../../src/audit/canonical.js';
import { runAuditVerify } from '../../src/commands/audit.js';
import { runConsent } from '../../src/commands/consent.js';
import { runDataExport } from '../../src/commands/data.js';
import { openHubContext } from '../../src/commands/hub-context.js';
import type { CommandIO } from '../../src/commands/io.js';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import type { ControlResponse } from '../../src/control/command.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';

const HUB = 'anchor-wiring-hub';

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
}

let root: string;
let dataDir: string;
let configFile: string;
let identity: string;
let raw: Record<string, unknown>;
let broker: EmbeddedBroker;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'camveil-anchor-wiring-'));
  dataDir = join(root, 'hub');
  identity = await generateX25519Identity();
  broker = await startEmbeddedBroker();
  raw = { hub: { id: HUB, region: 'DE' }, dataDir, household: { recipients: [await identityToRecipient(identity)] }, mqtt: { url: broker.url } };
  configFile = join(root, 'camveil.json');
  writeFileSync(configFile, JSON.stringify(raw));
});

afterAll(async () => {
  await broker?.close();
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

/** The log's committed head, read on a connection of its own (the commands have closed theirs). */
function committedHead(): AuditHead {
  const db = new Database(join(dataDir, 'camveil.db'), { readonly: true });
  try {
    return new AuditLog(db).head();
  } finally {
    db.close();
  }
}

/** Checks `lines` (canonical audit records) as a chain and returns each record's hash by seq. */
function chainOf(records: Array<{ seq: number; at: string; type: string; details: unknown; prevHash: string; hash: string }>): Map<number, string> {
  let prev = GENESIS_HASH;
  const hashes = new Map<number, string>();
  for (const e of records) {
    expect(e.prevHash).toBe(prev);
    expect(chainHash(prev, canonicalJson({ seq: e.seq, at: e.at, type: e.type, details: e.details }))).toBe(e.hash);
    hashes.set(e.seq, e.hash);
    prev = e.hash;
  }
  return hashes;
}

/** What someone holding only the export and the app's pinned key can check: signatures, and the anchor inside the chain. */
async function expectTrailerChecks(trailer: ExportTrailer, hashes: Map<number, string>, last: AuditHead): Promise<void> {
  const hubKey = (await loadOrCreateHubKeys(dataDir)).signingPublicKey;
  expect(trailer.hubKey).toBe(hubKey);
  expect(auditHeadSignatureValid(trailer.exported, hubKey)).toBe(true);
  expect(trailer.exported.head).toMatchObject({ seq: last.seq, hash: last.hash });
  expect(trailer.anchor).not.toBeNull();
  expect(auditHeadSignatureValid(trailer.anchor!, hubKey)).toBe(true);
  expect(trailer.anchor!.head.seq).toBeLessThanOrEqual(last.seq);
  expect(hashes.get(trailer.anchor!.head.seq)).toBe(trailer.anchor!.head.hash);
}

describe('the audit anchor follows every process that appends, and every export carries the signed heads', () => {
  it('console commands (camveil consent …) anchor what they append: the anchor is at the committed head when they exit', async () => {
    for (const action of [{ kind: 'accept-policy' as const, version: '2021-10-31' }, { kind: 'grant' as const, consent: 'localRecording' as const }]) {
      const io = capture();
      expect(await runConsent(action, { config: configFile }, io), io.err.join('\n')).toBe(0);
      const head = committedHead();
      expect(head.seq).toBeGreaterThan(0);
      const anchor = readAuditAnchor(dataDir);
      expect(anchor?.head).toMatchObject({ seq: head.seq, hash: head.hash });
      expect(auditHeadSignatureValid(anchor!, (await loadOrCreateHubKeys(dataDir)).signingPublicKey)).toBe(true);
    }
    // A record appended inside a transaction (as faces delete's are) is anchored on a later turn of the event
    // loop; a command closes its database before that turn: closing anchors it.
    const hub = await openHubContext(configFile);
    hub.db.transaction(() => hub.audit.append('export', { scope: 'audit', count: 0, recipients: 1 }))();
    hub.close();
    expect(readAuditAnchor(dataDir)?.head).toMatchObject({ seq: committedHead().seq, hash: committedHead().hash });
    const verify = capture();
    expect(await runAuditVerify({ dataDir }, verify)).toBe(0);
    expect(verify.out.join('\n')).toContain(`anchor: record ${committedHead().seq}, signed by the hub`);
    expect(verify.err).toEqual([]);
  });

  it('camveil data export: the export line carries the signed heads of the audit records that follow', async () => {
    const out = join(root, 'data.age');
    const io = capture();
    expect(await runDataExport({ config: configFile, out }, io), io.err.join('\n')).toBe(0);
    const lines = (await decryptToBuffer(identity, readFileSync(out))).toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { section: string; audit?: ExportTrailer });
    const records = lines.filter((l) => l.section === 'audit') as unknown as Parameters<typeof chainOf>[0];
    const hashes = chainOf(records);
    const last = records.at(-1)!;
    await expectTrailerChecks(lines[0]!.audit!, hashes, { seq: last.seq, hash: last.hash });
    // And the export's own record is anchored as the command exits.
    expect(readAuditAnchor(dataDir)?.head.seq).toBe(committedHead().seq);
  });

  describe('over MQTT, from the running service', () => {
    let gateway: Gateway;
    let appMqtt: MqttClient;
    let app: AppClient;

    beforeAll(async () => {
      gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
      await gateway.start();
      const keys = await loadOrCreateHubKeys(dataDir);
      appMqtt = await mqtt.connectAsync(broker.url);
      app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: HUB, timeoutMs: 30_000, identity, pinned: { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient } });
      // Paired as the console would pair it: the service reads its keys from the database.
      const hub = await openHubContext(configFile);
      try {
        new KeyRegistry(hub.db).add({ publicKey: app.key.publicKey, recipient: await identityToRecipient(identity), label: 'test phone' }, Date.now());
      } finally {
        hub.close();
      }
      await app.start();
    }, 60_000);

    afterAll(async () => {
      await app?.stop();
      await appMqtt?.endAsync();
      await gateway?.stop();
    });

    async function sealedReply(command: string): Promise<string[]> {
      const r: ControlResponse = await app.request(command, {}, { sign: true });
      if (r.status !== 'ok') throw new Error(`${command}: ${r.error.code}: ${r.error.message}`);
      const sealed = Buffer.from((r.data as { sealed: string }).sealed, 'base64');
      return (await decryptToBuffer(identity, sealed)).toString('utf8').trimEnd().split('\n');
    }

    it('audit/export ends with the same signed trailer as camveil audit export', async () => {
      const lines = await sealedReply('audit/export');
      const trailer = JSON.parse(lines.pop()!) as ExportTrailer;
      const records = lines.map((l) => JSON.parse(l) as Parameters<typeof chainOf>[0][number]);
      const hashes = chainOf(records);
      const last = records.at(-1)!;
      await expectTrailerChecks(trailer, hashes, { seq: last.seq, hash: last.hash });
    }, 60_000);

    it('data/export carries the signed heads of its audit records on its export line', async () => {
      const lines = (await sealedReply('data/export')).map((l) => JSON.parse(l) as { section: string; audit?: ExportTrailer });
      const records = lines.filter((l) => l.section === 'audit') as unknown as Parameters<typeof chainOf>[0];
      const hashes = chainOf(records);
      const last = records.at(-1)!;
      expect(lines[0]!.section).toBe('export');
      await expectTrailerChecks(lines[0]!.audit!, hashes, { seq: last.seq, hash: last.hash });
    }, 60_000);
  });
});
