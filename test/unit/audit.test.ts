import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog, chainHash, GENESIS_HASH, type AuditHead } from '../../src/audit/audit-log.js';
import { AUDIT_TYPES, auditDetailProblems, type AuditDetails, type AuditType } from '../../src/audit/audit-types.js';
import { auditHeadSignatureValid, readAuditAnchor } from '../../src/audit/audit-anchor.js';
import type { ExportTrailer } from '../../src/audit/audit-export.js';
import { canonicalJson } from '../../src/audit/canonical.js';
import { exportLine, runAuditExport, runAuditVerify } from '../../src/commands/audit.js';
import type { CommandIO } from '../../src/commands/io.js';
import { collect, decryptToBuffer } from '../../src/crypto/age-stream.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { CamveilError } from '../../src/errors.js';
import { openDatabase } from '../../src/store/database.js';

const OBJ = 'abcdefghijklmnopqrstuvwxyz';
const CAM = 'cam_abcdefghijklmnop';
const PERSON = 'person_qrstuvwxyz234567';

/** One valid example of every type. */
const SAMPLES: { [T in AuditType]: AuditDetails<T> } = {
  'upload.allowed': { objectId: OBJ, kind: 'clip', camera: CAM, zone: 'eu', bytes: 123_456, policyVersion: '2026-10' },
  'upload.denied': { objectId: OBJ, kind: 'snapshot', reason: 'consent.missing' },
  'consent.changed': { feature: 'face-recognition', state: 'granted', policyVersion: '2026-10', subject: PERSON, keyId: 'key_abcd1234' },
  'mode.changed': { from: 'cloud', to: 'local-only', reason: 'policy.version-changed' },
  deletion: { scope: 'person', count: 4, reason: 'request.erasure', subject: PERSON, objectIds: [OBJ] },
  export: { scope: 'audit', count: 10, recipients: 2 },
  'key.paired': { keyId: 'key_abcd1234', role: 'owner' },
  'key.revoked': { keyId: 'key_abcd1234', reason: 'user.request' },
  'face.recognition': { camera: CAM, decision: 'denied', reason: 'region.prohibited', region: 'US-IL' },
  'face.templates': { subject: PERSON, change: 'is-not', sighting: 'sight_aaaaaaaaaaaaaaaa', policyVersion: '2026-10' },
  'policy.accepted': { policyVersion: '2026-10', keyId: 'key_abcd1234', material: true },
  incident: { reason: 'bad-signatures', suppressed: 3 },
};

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-audit-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function openDb(dir: string): Database.Database {
  const db = new Database(path.join(dir, 'camveil.db'));
  db.pragma('journal_mode = WAL');
  return db;
}

/** A clock that ticks one second per call, from a fixed start. */
function clock(): () => Date {
  let t = Date.parse('2026-11-23T10:00:00.000Z');
  return () => new Date((t += 1000));
}

function filledLog(db: Database.Database, n: number): AuditLog {
  const log = new AuditLog(db, { now: clock() });
  for (let i = 0; i < n; i++) {
    log.append('upload.denied', { objectId: OBJ, kind: 'clip', reason: `r${i}` });
  }
  return log;
}

/** Direct SQL, as someone holding the file would: the append-only triggers are dropped first. */
function tamper(db: Database.Database, sql: string, ...params: unknown[]): void {
  db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;');
  db.prepare(sql).run(...params);
}

function capture(): { io: CommandIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (l) => out.push(l), stderr: (l) => err.push(l) }, out, err };
}

describe('canonicalJson', () => {
  it('sorts keys and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x', -0, 1.5], c: { z: 1, y: { q: 'é"' } } })).toBe(
      '{"a":[true,null,"x",0,1.5],"b":1,"c":{"y":{"q":"é\\""},"z":1}}',
    );
    expect(canonicalJson(Object.assign(Object.create(null) as object, { k: 1 }))).toBe('{"k":1}');
  });

  it('rejects what JSON cannot carry, naming the path', () => {
    const sparse = (): unknown[] => {
      const a: unknown[] = [1];
      a[2] = 3;
      return a;
    };
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: unknown[] = [undefined, NaN, Infinity, () => 1, 1n, Symbol('s'), new Date(0), Buffer.from('x'), new Map(), { a: undefined }, sparse(), cyclic];
    for (const value of bad) expect(() => canonicalJson(value), String(typeof value)).toThrow(TypeError);
    expect(() => canonicalJson({ a: { b: NaN } })).toThrow('$.a.b');
  });

  it('is a fixed point through JSON.parse (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const once = canonicalJson(value);
        expect(canonicalJson(JSON.parse(once))).toBe(once);
        expect(JSON.parse(once)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 300 },
    );
  });

  it('does not depend on key order (property)', () => {
    const reorder = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(reorder);
      if (v !== null && typeof v === 'object') {
        return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reorder(x)]));
      }
      return v;
    };
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(reorder(value))).toBe(canonicalJson(value));
      }),
      { numRuns: 300 },
    );
  });
});

describe('AuditLog', () => {
  it('appends every type with a verifiable chain', () => {
    const db = new Database(':memory:');
    const log = new AuditLog(db, { now: clock() });
    expect(log.verify()).toEqual({ ok: true, count: 0, head: { seq: 0, hash: GENESIS_HASH } });
    const appended = AUDIT_TYPES.map((type) => log.append(type, SAMPLES[type] as never));
    expect(appended.map((e) => e.seq)).toEqual(AUDIT_TYPES.map((_, i) => i + 1));
    expect(appended[0]?.prevHash).toBe(GENESIS_HASH);

    // The hash is recomputable from the documented formula alone.
    for (const [i, e] of appended.entries()) {
      const record = canonicalJson({ seq: e.seq, at: e.at, type: e.type, details: e.details });
      const expected = createHash('sha256').update(`${i === 0 ? GENESIS_HASH : appended[i - 1]?.hash}\n${record}`).digest('hex');
      expect(e.hash).toBe(expected);
      expect(chainHash(e.prevHash, record)).toBe(e.hash);
    }
    const last = appended.at(-1)!;
    expect(log.head()).toEqual({ seq: last.seq, hash: last.hash });
    expect(log.verify()).toEqual({ ok: true, count: AUDIT_TYPES.length, head: log.head() });
    expect(log.entries()).toEqual(appended);
    expect(log.entries({ fromSeq: 3, limit: 2 }).map((e) => e.seq)).toEqual([3, 4]);
    expect([...log.iterate()]).toEqual(appended);
    expect(db.prepare('SELECT record FROM audit WHERE seq = 1').pluck().get()).toBe(
      canonicalJson({ seq: 1, at: appended[0]?.at, type: 'upload.allowed', details: SAMPLES['upload.allowed'] }),
    );
  });

  it('registers its table through store migrate on a database from openDatabase', () => {
    const db = openDatabase(tempDir());
    new AuditLog(db).append('key.paired', { keyId: 'k/AbC+9=/xyz' });
    new AuditLog(db).append('key.revoked', { keyId: 'k/AbC+9=/xyz', reason: 'user-request' });
    expect(db.prepare(`SELECT version FROM schema_versions WHERE module = 'audit'`).pluck().get()).toBe(1);
    expect(new AuditLog(db).verify()).toMatchObject({ ok: true, count: 2 });
    db.close();
  });

  it('refuses UPDATE and DELETE through SQL while its triggers are in place, and offers no removal', () => {
    const db = new Database(':memory:');
    const log = filledLog(db, 3);
    expect(() => db.prepare('DELETE FROM audit WHERE seq = 2').run()).toThrow(/append-only/);
    expect(() => db.prepare(`UPDATE audit SET type = 'x' WHERE seq = 2`).run()).toThrow(/append-only/);
    expect(Object.getOwnPropertyNames(AuditLog.prototype).sort()).toEqual(['append', 'constructor', 'entries', 'head', 'iterate', 'verify']);
    expect(log.verify().ok).toBe(true);
  });

  describe('detects tampering at the first broken record', () => {
    const cases: Array<[string, (db: Database.Database) => void, number, RegExp]> = [
      [
        'an edited record',
        (db) => tamper(db, `UPDATE audit SET record = replace(record, '"r2"', '"r9"') WHERE seq = 3`),
        3,
        /hash does not match/,
      ],
      ['a changed hash', (db) => tamper(db, `UPDATE audit SET hash = ? WHERE seq = 4`, 'f'.repeat(64)), 4, /hash does not match/],
      ['a deleted middle row', (db) => tamper(db, 'DELETE FROM audit WHERE seq = 3'), 3, /record 3 is missing/],
      [
        "two rows' content swapped",
        (db) => {
          const rows = db.prepare('SELECT seq, at, type, record, prev_hash, hash FROM audit WHERE seq IN (2, 5) ORDER BY seq').all() as Array<Record<string, unknown>>;
          const [a, b] = rows as [Record<string, unknown>, Record<string, unknown>];
          const set = 'UPDATE audit SET at = ?, type = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = ?';
          tamper(db, set, b.at, b.type, b.record, b.prev_hash, b.hash, 2);
          tamper(db, set, a.at, a.type, a.record, a.prev_hash, a.hash, 5);
        },
        2,
        /prev_hash/,
      ],
      ['a changed column', (db) => tamper(db, `UPDATE audit SET type = 'export' WHERE seq = 6`), 6, /column/],
      ['a non-canonical record', (db) => tamper(db, `UPDATE audit SET record = ' ' || record WHERE seq = 1`), 1, /canonical/],
      ['an unparsable record', (db) => tamper(db, `UPDATE audit SET record = '{' WHERE seq = 5`), 5, /not valid JSON/],
    ];
    for (const [name, mutate, brokenAt, reason] of cases) {
      it(name, () => {
        const db = new Database(':memory:');
        const log = filledLog(db, 6);
        mutate(db);
        const result = log.verify();
        expect(result).toMatchObject({ ok: false, brokenAt });
        expect(result.ok ? '' : result.reason).toMatch(reason);
        expect(log.entries()).toHaveLength(name === 'a deleted middle row' ? 5 : 6);
      });
    }

    it('a truncated tail or a rewritten chain, against a head seen before', () => {
      const db = new Database(':memory:');
      const log = filledLog(db, 6);
      const seen = log.head();
      tamper(db, 'DELETE FROM audit WHERE seq = 6');
      expect(log.verify()).toMatchObject({ ok: true, count: 5 });
      expect(log.verify(seen)).toMatchObject({ ok: false, brokenAt: 6, reason: expect.stringMatching(/truncated/) as unknown });

      // Rewriting record 3 and re-hashing everything after it gives a valid chain, but not the seen head.
      const db2 = new Database(':memory:');
      const log2 = filledLog(db2, 6);
      const seen2 = log2.head();
      tamper(db2, `UPDATE audit SET record = replace(record, '"r2"', '"r9"') WHERE seq = 3`);
      let prev = db2.prepare('SELECT hash FROM audit WHERE seq = 2').pluck().get() as string;
      for (const row of db2.prepare('SELECT seq, record FROM audit WHERE seq >= 3 ORDER BY seq').all() as Array<{ seq: number; record: string }>) {
        const hash = chainHash(prev, row.record);
        tamper(db2, 'UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?', prev, hash, row.seq);
        prev = hash;
      }
      expect(log2.verify().ok).toBe(true);
      expect(log2.verify(seen2)).toMatchObject({ ok: false, brokenAt: 6 });
    });
  });

  it('detects any single mutation of any row (property)', () => {
    const base32 = fc.stringMatching(/^[a-z2-7]{26}$/);
    const reasonArb = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,20}$/);
    const appendArb = fc.oneof(
      fc.record({ type: fc.constant('upload.denied' as const), details: fc.record({ objectId: base32, kind: fc.constantFrom('clip' as const, 'snapshot' as const), reason: reasonArb }) }),
      fc.record({ type: fc.constant('export' as const), details: fc.record({ scope: fc.constant('audit'), count: fc.nat(), recipients: fc.nat(10) }) }),
      fc.record({ type: fc.constant('key.revoked' as const), details: fc.record({ keyId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_+/=-]{3,40}$/), reason: reasonArb }) }),
      fc.record({
        type: fc.constant('mode.changed' as const),
        details: fc.record({ from: fc.constantFrom('cloud' as const, 'local-only' as const), to: fc.constantFrom('cloud' as const, 'local-only' as const), reason: reasonArb }),
      }),
    );
    const mutationArb = fc.record({
      row: fc.nat(),
      column: fc.constantFrom('at', 'type', 'record', 'prev_hash', 'hash', 'seq', 'delete'),
      text: fc.string({ maxLength: 80 }),
    });
    fc.assert(
      fc.property(fc.array(appendArb, { minLength: 1, maxLength: 12 }), mutationArb, (appends, mutation) => {
        const db = new Database(':memory:');
        const log = new AuditLog(db, { now: clock() });
        for (const a of appends) log.append(a.type, a.details);
        expect(log.verify()).toMatchObject({ ok: true, count: appends.length });
        const seen: AuditHead = log.head();
        const seq = (mutation.row % appends.length) + 1;
        if (mutation.column === 'delete') {
          tamper(db, 'DELETE FROM audit WHERE seq = ?', seq);
        } else if (mutation.column === 'seq') {
          tamper(db, 'UPDATE audit SET seq = ? WHERE seq = ?', seq + 1000, seq);
        } else {
          const old = db.prepare(`SELECT ${mutation.column} FROM audit WHERE seq = ?`).pluck().get(seq) as string;
          const text = mutation.text === old ? `${old}x` : mutation.text;
          tamper(db, `UPDATE audit SET ${mutation.column} = ? WHERE seq = ?`, text, seq);
        }
        const result = log.verify(seen);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.brokenAt).toBe(seq);
        // Without an anchor, only removing the newest row goes unnoticed (documented: truncation).
        const truncation = mutation.column === 'delete' && seq === appends.length;
        expect(log.verify().ok).toBe(truncation);
        db.close();
      }),
      { numRuns: 200 },
    );
  });

  describe('refuses personal data, appending nothing', () => {
    const cases: Array<[string, AuditType, Record<string, unknown>, string]> = [
      ['a name', 'key.paired', { keyId: 'key_abcd1234', name: 'Alice Example' }, 'Alice'],
      ['a camera name', 'face.recognition', { ...SAMPLES['face.recognition'], cameraName: 'Front door' }, 'Front'],
      ['an e-mail address', 'consent.changed', { ...SAMPLES['consent.changed'], subject: 'alice@example.com' }, 'alice@'],
      ['an e-mail key', 'key.paired', { keyId: 'key_abcd1234', ownerEmail: 'x' }, 'ownerEmail: x'],
      ['a serial number', 'face.recognition', { ...SAMPLES['face.recognition'], serial: 'FI9821W-0012345' }, 'FI9821W'],
      ['a MAC address', 'upload.denied', { ...SAMPLES['upload.denied'], reason: '00:11:22:aa:bb:cc' }, 'aa:bb'],
      ['a URL with user:pass@', 'upload.denied', { ...SAMPLES['upload.denied'], reason: 'rtsp://admin:hunter2@192.168.1.20/live' }, 'hunter2'],
      ['an embedding', 'face.recognition', { ...SAMPLES['face.recognition'], matched: 1, vector: Array.from({ length: 128 }, (_, i) => i / 128) }, '0.5'],
      ['a long string', 'key.revoked', { keyId: 'key_abcd1234', reason: 'x'.repeat(300) }, 'xxxxxxxx'],
      ['a file path', 'upload.denied', { ...SAMPLES['upload.denied'], reason: '/home/alice/clip.mp4' }, 'alice'],
      ['a password', 'key.paired', { keyId: 'key_abcd1234', password: 'hunter2' }, 'hunter2'],
    ];
    for (const [name, type, details, secret] of cases) {
      it(name, () => {
        const db = new Database(':memory:');
        const log = filledLog(db, 2);
        const head = log.head();
        let error: unknown;
        try {
          log.append(type, details as never);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(CamveilError);
        expect((error as CamveilError).code).toBe('CAMVEIL_E_AUDIT_DETAILS_INVALID');
        expect((error as CamveilError).message).not.toContain(secret);
        expect(log.head()).toEqual(head);
        expect(log.entries()).toHaveLength(2);
      });
    }

    it('lists every problem as path: reason, and accepts harmless look-alikes', () => {
      expect(auditDetailProblems('key.paired', { keyId: 'key_abcd1234', userName: 'a', mac: 'b' })).toEqual(
        expect.arrayContaining([expect.stringMatching(/^details\.userName: /) as unknown, expect.stringMatching(/^details\.mac: /) as unknown]),
      );
      expect(auditDetailProblems('no.such.type', {})).toEqual(['type: unknown audit type']);
      expect(auditDetailProblems('mode.changed', { from: 'cloud', to: 'local-only', reason: 'machine.domain-change' })).toEqual([]);
      for (const type of AUDIT_TYPES) expect(auditDetailProblems(type, SAMPLES[type]), type).toEqual([]);
    });
  });

  it('keeps one valid chain under interleaved appends from two connections', () => {
    const dir = tempDir();
    const a = new AuditLog(openDb(dir));
    const b = new AuditLog(openDb(dir));
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }), (picks) => {
        for (const pick of picks) (pick ? a : b).append('export', { scope: 'audit', count: 1, recipients: 1 });
      }),
      { numRuns: 20 },
    );
    expect(new AuditLog(openDb(dir)).verify()).toMatchObject({ ok: true });
    expect(a.head()).toEqual(b.head());
  });

  it('keeps one valid chain under concurrent appends from two processes', async () => {
    const dir = tempDir();
    new AuditLog(openDb(dir)).append('key.paired', { keyId: 'key_setup' });
    const logModule = fileURLToPath(new URL('../../src/audit/audit-log.ts', import.meta.url));
    const script = `
      import Database from 'better-sqlite3';
      import { AuditLog } from ${JSON.stringify(logModule)};
      const db = new Database(${JSON.stringify(path.join(dir, 'camveil.db'))});
      db.pragma('busy_timeout = 20000');
      const log = new AuditLog(db);
      for (let i = 0; i < 100; i++) log.append('export', { scope: 'audit', count: i, recipients: 1 });
    `;
    const run = () =>
      new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
        child.once('error', reject);
        child.once('close', resolve);
      });
    expect(await Promise.all([run(), run()])).toEqual([0, 0]);
    expect(new AuditLog(openDb(dir)).verify()).toMatchObject({ ok: true, count: 201 });
  });
});

describe('camveil audit verify', () => {
  it('exits 2 when the database is missing', async () => {
    const c = capture();
    expect(await runAuditVerify({ dataDir: tempDir() }, c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/CAMVEIL_E_AUDIT_MISSING: no audit database at .*camveil\.db/);
  });

  it('exits 0 with the count and head of an intact log', async () => {
    const dir = tempDir();
    const db = openDb(dir);
    const head = filledLog(db, 3).head();
    db.close();
    const c = capture();
    expect(await runAuditVerify({ dataDir: dir }, c.io)).toBe(0);
    expect(c.out).toEqual([`audit log intact: 3 records, head 3 ${head.hash.slice(0, 16)}`]);
  });

  it('reads a database without the audit table as an empty log, without creating it', async () => {
    const dir = tempDir();
    openDb(dir).exec('CREATE TABLE other (x)');
    const c = capture();
    expect(await runAuditVerify({ dataDir: dir }, c.io)).toBe(0);
    expect(c.out).toEqual([`audit log intact: 0 records, head 0 ${'0'.repeat(16)}`]);
    const check = openDb(dir);
    expect(check.prepare(`SELECT name FROM sqlite_master WHERE name = 'audit'`).get()).toBeUndefined();
  });

  it('exits 1 naming the first broken record', async () => {
    const dir = tempDir();
    const db = openDb(dir);
    filledLog(db, 4);
    tamper(db, `UPDATE audit SET record = replace(record, '"r1"', '"rx"') WHERE seq = 2`);
    db.close();
    const c = capture();
    expect(await runAuditVerify({ dataDir: dir }, c.io)).toBe(1);
    expect(c.err).toEqual(['audit log broken at record 2: hash does not match the record']);
  });
});

describe('camveil audit export', () => {
  let identity: string;
  let recipient: string;
  beforeAll(async () => {
    identity = await generateX25519Identity();
    recipient = await identityToRecipient(identity);
  });

  /** A hub data dir: its keys (the export signs its last line with the hub key) and a log of every type. */
  async function logIn(dir: string): Promise<string[]> {
    await loadOrCreateHubKeys(dir);
    const db = openDb(dir);
    const log = new AuditLog(db, { now: clock() });
    for (const type of AUDIT_TYPES) log.append(type, SAMPLES[type]);
    const lines = log.entries().map(exportLine);
    db.close();
    return lines;
  }

  it('writes the log as age-encrypted JSON lines to a file, never plaintext', async () => {
    const dir = tempDir();
    const lines = await logIn(dir);
    const out = path.join(dir, 'audit.age');
    const c = capture();
    expect(await runAuditExport({ dataDir: dir, recipients: [recipient], out }, c.io)).toBe(0);
    const bytes = readFileSync(out);
    expect(bytes.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    for (const needle of ['upload.allowed', OBJ, CAM, 'consent.missing', lines[0]!.slice(0, 20)]) {
      expect(bytes.includes(Buffer.from(needle))).toBe(false);
    }
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.endsWith('.partial'))).toEqual([]);
    const plain = (await decryptToBuffer(identity, bytes)).toString('utf8');
    expect(plain.startsWith(lines.join(''))).toBe(true);
    const records = plain.trimEnd().split('\n');
    const trailer = JSON.parse(records.pop()!) as ExportTrailer;
    expect(records).toHaveLength(lines.length);

    // Each line carries what a reader needs to re-check the chain.
    let prev = GENESIS_HASH;
    for (const line of records) {
      const e = JSON.parse(line) as { seq: number; at: string; type: string; details: unknown; prevHash: string; hash: string };
      expect(e.prevHash).toBe(prev);
      expect(chainHash(e.prevHash, canonicalJson({ seq: e.seq, at: e.at, type: e.type, details: e.details }))).toBe(e.hash);
      prev = e.hash;
    }
    // The last line: the hub's signature over the last exported record (no anchor existed before this export).
    expect(trailer.anchor).toBeNull();
    expect(trailer.exported.head).toMatchObject({ seq: lines.length, hash: prev });
    expect(trailer.hubKey).toBe((await loadOrCreateHubKeys(dir)).signingPublicKey);
    expect(auditHeadSignatureValid(trailer.exported, trailer.hubKey)).toBe(true);

    // The export is itself audited.
    const db = openDb(dir);
    const last = new AuditLog(db).entries().at(-1);
    expect(last).toMatchObject({ type: 'export', details: { scope: 'audit', count: AUDIT_TYPES.length, recipients: 1 } });
    // …and anchored: the hub's signed head outside the database now names it.
    expect(readAuditAnchor(dir)?.head).toMatchObject({ seq: last!.seq, hash: last!.hash });
    expect(c.err).toEqual([`exported ${AUDIT_TYPES.length} audit records to ${out}, encrypted to 1 recipient(s)`]);
  });

  it('streams to stdout as binary and refuses a terminal', async () => {
    const dir = tempDir();
    const lines = await logIn(dir);
    const sink = new PassThrough();
    const collected = collect(sink);
    expect(await runAuditExport({ dataDir: dir, recipients: [recipient] }, capture().io, sink)).toBe(0);
    const plain = (await decryptToBuffer(identity, await collected)).toString('utf8');
    expect(plain.startsWith(lines.join(''))).toBe(true);
    expect(JSON.parse(plain.trimEnd().split('\n').at(-1)!)).toHaveProperty('exported');

    const tty = Object.assign(new PassThrough(), { isTTY: true });
    const c = capture();
    expect(await runAuditExport({ dataDir: dir, recipients: [recipient] }, c.io, tty)).toBe(2);
    expect(c.err.join('\n')).toMatch(/CAMVEIL_E_USAGE: refusing to write ciphertext to a terminal/);
  });

  it('exits 2 for bad recipients or a missing database, writing nothing', async () => {
    const dir = tempDir();
    await logIn(dir);
    const out = path.join(dir, 'x.age');
    const bad = capture();
    expect(await runAuditExport({ dataDir: dir, recipients: ['age1nope'], out }, bad.io)).toBe(2);
    expect(bad.err.join('\n')).toMatch(/CAMVEIL_E_KEY_INVALID/);
    const none = capture();
    expect(await runAuditExport({ dataDir: dir, recipients: [], out }, none.io)).toBe(2);
    const missing = capture();
    expect(await runAuditExport({ dataDir: tempDir(), recipients: [recipient], out }, missing.io)).toBe(2);
    expect(missing.err.join('\n')).toMatch(/CAMVEIL_E_AUDIT_MISSING/);
    expect(readdirSync(dir).filter((f) => f.startsWith('x.age'))).toEqual([]);
  });

  it('still exports a broken log, with a warning and exit 1', async () => {
    const dir = tempDir();
    await logIn(dir);
    const db = openDb(dir);
    tamper(db, 'DELETE FROM audit WHERE seq = 2');
    db.close();
    const c = capture();
    expect(await runAuditExport({ dataDir: dir, recipients: [recipient], out: path.join(dir, 'b.age') }, c.io)).toBe(1);
    expect(c.err.at(-1)).toBe('warning: audit log broken at record 2: record 2 is missing (next is 3)');
  });
});
