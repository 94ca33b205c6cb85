import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AUDIT_ANCHOR_FILE,
  AuditAnchorWriter,
  auditHeadSignatureValid,
  readAuditAnchor,
  signAuditHead,
  writeAuditAnchor,
  type SignedAuditHead,
} from '../../src/audit/audit-anchor.js';
import { AuditLog, type AuditHead } from '../../src/audit/audit-log.js';
import { runAuditVerify } from '../../src/commands/audit.js';
import type { CommandIO } from '../../src/commands/io.js';
import { AuditHeadWatch } from '../../src/control/audit-head-watch.js';
import type { PinnedHub } from '../../src/control/hub-message.js';
import { loadOrCreateHubKeys, rawPublicKeyOf } from '../../src/crypto/hub-keys.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-anchor-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function capture(): { io: CommandIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (l) => out.push(l), stderr: (l) => err.push(l) }, out, err };
}

/** What `fn` throws (undefined when it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

const AT = new Date('2026-11-23T10:00:00.000Z');
const HEAD: AuditHead = { seq: 7, hash: 'ab'.repeat(32) };

/** A hub data dir: its real keys, a WAL database and a log whose appends are anchored. */
async function anchoredHub(records: number): Promise<{ dir: string; db: Database.Database; log: AuditLog; writer: AuditAnchorWriter }> {
  const dir = tempDir();
  const keys = await loadOrCreateHubKeys(dir);
  const db = new Database(path.join(dir, 'camveil.db'));
  db.pragma('journal_mode = WAL');
  const writer = new AuditAnchorWriter({ dataDir: dir, signingKey: keys.signingKey });
  const log = new AuditLog(db, { onAppend: (head) => writer.record(head) });
  expect(writer.check(log)).toEqual({ ok: true });
  for (let i = 0; i < records; i++) log.append('upload.denied', { objectId: 'abcdefghijklmnopqrstuvwxyz', kind: 'clip', reason: `r${i}` });
  return { dir, db, log, writer };
}

describe('signed audit head', () => {
  const key = generateKeyPairSync('ed25519').privateKey;

  it('verifies with the signing key, its public key or the raw key the app pins', () => {
    const signed = signAuditHead(key, HEAD, AT);
    expect(signed.head).toEqual({ v: 1, seq: 7, hash: HEAD.hash, at: AT.toISOString() });
    expect(auditHeadSignatureValid(signed, key)).toBe(true);
    expect(auditHeadSignatureValid(signed, rawPublicKeyOf(key))).toBe(true);
  });

  it('refuses any changed field, another key, and a signature made for other bytes', () => {
    const signed = signAuditHead(key, HEAD, AT);
    const changed: SignedAuditHead[] = [
      { ...signed, head: { ...signed.head, seq: 8 } },
      { ...signed, head: { ...signed.head, hash: 'cd'.repeat(32) } },
      { ...signed, head: { ...signed.head, at: new Date(AT.getTime() + 1).toISOString() } },
      { ...signed, sig: Buffer.alloc(64).toString('base64') },
      { ...signed, sig: 'not base64 at all' },
    ];
    for (const c of changed) expect(auditHeadSignatureValid(c, key)).toBe(false);
    expect(auditHeadSignatureValid(signed, generateKeyPairSync('ed25519').privateKey)).toBe(false);
    expect(auditHeadSignatureValid(signed, Buffer.alloc(31).toString('base64'))).toBe(false);
  });
});

describe('anchor file', () => {
  it('is written atomically, mode 0600, leaving no temporary file, and read back', () => {
    const dir = tempDir();
    const key = generateKeyPairSync('ed25519').privateKey;
    expect(readAuditAnchor(dir)).toBeUndefined();
    writeAuditAnchor(dir, signAuditHead(key, HEAD, AT));
    const second = signAuditHead(key, { seq: 8, hash: 'cd'.repeat(32) }, AT);
    writeAuditAnchor(dir, second);
    expect(readAuditAnchor(dir)).toEqual(second);
    expect(statSync(path.join(dir, AUDIT_ANCHOR_FILE)).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual([AUDIT_ANCHOR_FILE]);
  });

  it('a writer killed before its rename leaves a temporary that the next start removes once a minute old', async () => {
    const { dir, db, log } = await anchoredHub(1);
    const stale = path.join(dir, `${AUDIT_ANCHOR_FILE}.0123456789ab.tmp`);
    const fresh = path.join(dir, `${AUDIT_ANCHOR_FILE}.ba9876543210.tmp`);
    writeFileSync(stale, '{');
    writeFileSync(fresh, '{');
    utimesSync(stale, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    const writer = new AuditAnchorWriter({ dataDir: dir, signingKey: (await loadOrCreateHubKeys(dir)).signingKey });
    expect(writer.check(log)).toMatchObject({ ok: true });
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    db.close();
  });

  it('refuses a malformed file naming it', () => {
    const dir = tempDir();
    const file = path.join(dir, AUDIT_ANCHOR_FILE);
    for (const text of ['{', '{"head":{"v":1},"sig":"x"}', JSON.stringify({ head: { v: 1, seq: -1, hash: 'ab'.repeat(32), at: AT.toISOString() }, sig: 'x' })]) {
      writeFileSync(file, text);
      expect(thrown(() => readAuditAnchor(dir))).toMatchObject({ code: 'CAMVEIL_E_AUDIT_ANCHOR_INVALID', where: file });
    }
  });
});

describe('anchor writer and AuditLog.onAppend', () => {
  it('anchors every committed append, signed by the hub key', async () => {
    const { dir, log } = await anchoredHub(5);
    const anchor = readAuditAnchor(dir)!;
    expect(anchor.head).toMatchObject({ seq: 5, hash: log.head().hash });
    expect(auditHeadSignatureValid(anchor, (await loadOrCreateHubKeys(dir)).signingKey)).toBe(true);
  });

  it('never anchors a record of a transaction that is rolled back, and anchors one that commits once it has', async () => {
    const { dir, db, log } = await anchoredHub(2);
    const append = () => log.append('upload.denied', { objectId: 'abcdefghijklmnopqrstuvwxyz', kind: 'clip', reason: 'nested' });
    expect(() =>
      db.transaction(() => {
        append();
        throw new Error('the caller gives up');
      })(),
    ).toThrow('the caller gives up');
    await nextTurn();
    expect(log.head().seq).toBe(2);
    expect(readAuditAnchor(dir)!.head.seq).toBe(2);

    db.transaction(() => {
      append();
      append();
      // Inside the transaction the anchor has not moved: the records may still be rolled back.
      expect(readAuditAnchor(dir)!.head.seq).toBe(2);
    })();
    await nextTurn();
    expect(readAuditAnchor(dir)!.head).toMatchObject({ seq: 4, hash: log.head().hash });
  });

  it('writes nothing before the anchor on disk was checked, and never over one the chain contradicts', async () => {
    const { dir, db, log } = await anchoredHub(6);
    const keys = await loadOrCreateHubKeys(dir);
    const before = readFileSync(path.join(dir, AUDIT_ANCHOR_FILE), 'utf8');
    db.exec('DROP TRIGGER audit_no_delete');
    db.prepare('DELETE FROM audit WHERE seq > 3').run();

    const unchecked = new AuditAnchorWriter({ dataDir: dir, signingKey: keys.signingKey });
    unchecked.record(log.head());
    expect(readFileSync(path.join(dir, AUDIT_ANCHOR_FILE), 'utf8')).toBe(before);

    const writer = new AuditAnchorWriter({ dataDir: dir, signingKey: keys.signingKey });
    const reopened = new AuditLog(db, { onAppend: (head) => writer.record(head) });
    expect(writer.check(reopened)).toMatchObject({ ok: false, reason: 'audit log rolled back: anchor at 6 but the log ends at record 3' });
    reopened.append('export', { scope: 'audit', count: 1, recipients: 1 });
    expect(readFileSync(path.join(dir, AUDIT_ANCHOR_FILE), 'utf8')).toBe(before);
  });

  it('refuses an anchor signed by another key', async () => {
    const { dir, log } = await anchoredHub(2);
    writeAuditAnchor(dir, signAuditHead(generateKeyPairSync('ed25519').privateKey, log.head(), AT));
    const writer = new AuditAnchorWriter({ dataDir: dir, signingKey: (await loadOrCreateHubKeys(dir)).signingKey });
    expect(writer.check(log)).toMatchObject({ ok: false, detail: "audit anchor not signed by this hub's key" });
  });
});

describe('camveil audit verify against the anchor (in process)', () => {
  it('exits 0 naming the anchor when the chain reaches it', async () => {
    const { dir, db } = await anchoredHub(4);
    db.close();
    const c = capture();
    expect(await runAuditVerify({ dataDir: dir }, c.io)).toBe(0);
    expect(c.out[1]).toMatch(/^anchor: record 4, signed by the hub at /);
    expect(c.err).toEqual([]);
  });

  it('exits 1 when the log was put back to an older copy that then grew to the same length', async () => {
    const { dir, db, log } = await anchoredHub(3);
    db.pragma('wal_checkpoint(TRUNCATE)');
    copyFileSync(path.join(dir, 'camveil.db'), path.join(dir, 'old.db'));
    for (let i = 0; i < 2; i++) log.append('export', { scope: 'audit', count: i, recipients: 1 });
    const anchored = log.head();
    db.close();
    // The attacker's copy, grown to the anchor's length with other records: seq 5 exists, with another hash.
    const old = new Database(path.join(dir, 'old.db'));
    const grown = new AuditLog(old);
    for (let i = 0; i < 2; i++) grown.append('export', { scope: 'audit', count: 100 + i, recipients: 2 });
    old.close();
    rmSync(path.join(dir, 'camveil.db-wal'), { force: true });
    rmSync(path.join(dir, 'camveil.db-shm'), { force: true });
    copyFileSync(path.join(dir, 'old.db'), path.join(dir, 'camveil.db'));
    const c = capture();
    expect(await runAuditVerify({ dataDir: dir }, c.io)).toBe(1);
    expect(c.err).toEqual([expect.stringMatching(new RegExp(`^CAMVEIL_E_AUDIT_ROLLBACK: audit log rolled back: anchor at 5 but record 5 has hash [0-9a-f]{16}…, not ${anchored.hash.slice(0, 16)}…$`))]);
  });

  it('--head: exits 1 when the log no longer holds a kept head, 2 when the option is malformed; warns without an anchor', async () => {
    const { dir, db, log } = await anchoredHub(5);
    const kept = log.head();
    db.exec('DROP TRIGGER audit_no_delete');
    db.prepare('DELETE FROM audit WHERE seq > 2').run();
    db.close();
    rmSync(path.join(dir, AUDIT_ANCHOR_FILE));
    const warned = capture();
    expect(await runAuditVerify({ dataDir: dir }, warned.io)).toBe(0);
    expect(warned.err).toEqual([expect.stringMatching(/^warning: no audit anchor \(audit-head\.json\) in .*: a cut or rolled-back tail cannot be detected here/)]);
    const c = capture();
    expect(await runAuditVerify({ dataDir: dir, head: `${kept.seq}:${kept.hash}` }, c.io)).toBe(1);
    expect(c.err.at(-1)).toBe('CAMVEIL_E_AUDIT_ROLLBACK: audit log rolled back: head 5 given with --head but the log ends at record 2');
    const bad = capture();
    expect(await runAuditVerify({ dataDir: dir, head: '5:xyz' }, bad.io)).toBe(2);
    expect(bad.err.join('\n')).toContain('CAMVEIL_E_USAGE: --head must be SEQ:HASH');
  });

  it('exits 1 naming the file when the anchor is not signed by the hub key', async () => {
    const { dir, db } = await anchoredHub(3);
    db.close();
    const file = path.join(dir, AUDIT_ANCHOR_FILE);
    const anchor = JSON.parse(readFileSync(file, 'utf8')) as SignedAuditHead;
    writeFileSync(file, JSON.stringify({ ...anchor, head: { ...anchor.head, seq: 2 } }));
    const c = capture();
    expect(await runAuditVerify({ dataDir: dir }, c.io)).toBe(1);
    expect(c.err).toEqual([`CAMVEIL_E_AUDIT_ANCHOR_INVALID: audit anchor ${file} is not signed by the hub key hub-signing-key.pem`]);
  });
});

describe('the app remembers the highest audit head per hub', () => {
  const key = generateKeyPairSync('ed25519').privateKey;
  const pinned: PinnedHub = { hubId: 'home', baseTopic: 'camveil', signingKey: rawPublicKeyOf(key), recipient: 'age1xxxx' };
  const state = (seq: number, hash = String(seq % 10).repeat(64)) => ({ mode: 'cloud', audit: signAuditHead(key, { seq, hash }, AT) });

  it('moves forward, and reports a lower head or another hash at the same seq as a rollback', () => {
    const watch = new AuditHeadWatch();
    expect(watch.observe('camveil/home', pinned, { mode: 'cloud' })).toBe(false);
    expect(watch.observe('camveil/home', pinned, state(5))).toBe(true);
    expect(watch.observe('camveil/home', pinned, state(5))).toBe(false);
    expect(watch.observe('camveil/home', pinned, state(9))).toBe(true);
    const error = thrown(() => watch.observe('camveil/home', pinned, state(4))) as Error & { code: string };
    expect(error.code).toBe('CAMVEIL_E_AUDIT_ROLLBACK');
    expect(error.message).toMatch(/^audit log rolled back: the hub's state shows head 4 but this app saw head 9 .*audit verify --head 9:9{64}$/);
    expect(thrown(() => watch.observe('camveil/home', pinned, state(9, 'e'.repeat(64))))).toMatchObject({ code: 'CAMVEIL_E_AUDIT_ROLLBACK' });
    // The higher head stays remembered, across a restart through the state file's JSON.
    const again = new AuditHeadWatch(JSON.parse(JSON.stringify(watch.toJSON())) as Record<string, SignedAuditHead>);
    expect(again.head('camveil/home')?.head.seq).toBe(9);
    expect(thrown(() => again.observe('camveil/home', pinned, state(8)))).toMatchObject({ code: 'CAMVEIL_E_AUDIT_ROLLBACK' });
  });

  it('refuses a head not signed by the pinned key, or malformed', () => {
    const watch = new AuditHeadWatch();
    const other = generateKeyPairSync('ed25519').privateKey;
    expect(thrown(() => watch.observe('camveil/home', pinned, { audit: signAuditHead(other, HEAD, AT) }))).toMatchObject({ code: 'CAMVEIL_E_HUB_UNVERIFIED' });
    expect(thrown(() => watch.observe('camveil/home', pinned, { audit: { head: 1 } }))).toMatchObject({ code: 'CAMVEIL_E_HUB_UNVERIFIED' });
  });
});
