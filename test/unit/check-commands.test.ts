import { mkdtempSync, openSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { runAuditVerify } from '../../src/commands/audit.js';
import { runConfigCheck } from '../../src/commands/config-check.js';
import type { CommandIO } from '../../src/commands/io.js';
import { DATABASE_FILE, openDatabase } from '../../src/store/database.js';

const root = mkdtempSync(join(tmpdir(), 'camveil-checks-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dir = () => {
  const d = join(root, String(n++));
  return d;
};

function capture(): { io: CommandIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) }, out, err };
}

describe('config check reads the secrets the file names', () => {
  it('exits 2 naming a camera password file that does not exist, an unset variable and an empty token file; never prints a secret', () => {
    const d = dir();
    writeFileSync(join(root, 'token-empty'), '\n');
    writeFileSync(join(root, 'cam2.pw'), 'hunter2\n', { mode: 0o600 });
    const file = join(root, 'secrets.json');
    writeFileSync(
      file,
      JSON.stringify({
        hub: { id: 'home', region: 'DE' },
        dataDir: d,
        household: { recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] },
        cameras: [
          { id: 'front', source: 'rtsp://192.0.2.1/x', credentials: { username: 'admin', passwordFile: join(root, 'missing.pw') } },
          { id: 'back', source: 'rtsp://192.0.2.2/x', credentials: { username: 'admin', passwordEnv: 'CAMVEIL_TEST_UNSET_VAR' } },
          { id: 'side', source: 'rtsp://192.0.2.3/x', credentials: { username: 'admin', passwordFile: join(root, 'cam2.pw') } },
        ],
        uplink: { enabled: true, endpoints: { eu: 'https://cloud.example/v1' }, tokenFile: join(root, 'token-empty') },
      }),
    );
    const c = capture();
    expect(runConfigCheck(file, c.io, {})).toBe(2);
    const text = c.err.join('\n');
    expect(text).toContain('CAMVEIL_E_SECRET_UNREADABLE (3 secrets cannot be read)');
    expect(text).toMatch(/cameras\[0\]\.credentials\.passwordFile: cannot read .*missing\.pw: ENOENT/);
    expect(text).toContain('cameras[1].credentials.passwordEnv: environment variable CAMVEIL_TEST_UNSET_VAR is not set');
    expect(text).toMatch(/uplink\.tokenFile: .*token-empty is empty/);
    expect(text).not.toContain('cameras[2]');
    expect(text + c.out.join('\n')).not.toContain('hunter2');
    // With the secrets in place, the same file passes.
    writeFileSync(join(root, 'missing.pw'), 'pw\n');
    writeFileSync(join(root, 'token-empty'), 'tok\n');
    expect(runConfigCheck(file, capture().io, { CAMVEIL_TEST_UNSET_VAR: 'x' })).toBe(0);
  });
});

describe('audit verify on a damaged database', () => {
  it('says CAMVEIL_E_STORE_CORRUPT for a file that is not a database', async () => {
    const d = dir();
    openDatabase(d).close();
    writeFileSync(join(d, DATABASE_FILE), Buffer.alloc(8192, 'not a database '));
    const c = capture();
    expect(await runAuditVerify({ dataDir: d }, c.io)).toBe(1);
    expect(c.err.join('\n')).toMatch(/^CAMVEIL_E_STORE_CORRUPT: .*camveil\.db cannot be read as a database \(SQLITE_NOTADB: .*\): the audit log cannot be verified$/);
  });

  it('says CAMVEIL_E_STORE_CORRUPT for malformed pages', async () => {
    const d = dir();
    const db = openDatabase(d);
    const log = new AuditLog(db);
    for (let i = 0; i < 300; i++) log.append('export', { scope: 'audit', count: i, recipients: 1 });
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    // Garbage over the b-tree pages after the schema page.
    const fd = openSync(join(d, DATABASE_FILE), 'r+');
    writeSync(fd, Buffer.alloc(4096 * 3, 0xa5), 0, 4096 * 3, 4096 * 2);
    closeSync(fd);
    const c = capture();
    expect(await runAuditVerify({ dataDir: d }, c.io)).toBe(1);
    expect(c.err.join('\n')).toMatch(/^CAMVEIL_E_STORE_CORRUPT: .*\(SQLITE_CORRUPT.*the audit log cannot be verified$/);
  });

  it('says CAMVEIL_E_STORE_CORRUPT for an empty file instead of "intact: 0 records"', async () => {
    const d = dir();
    openDatabase(d).close();
    writeFileSync(join(d, DATABASE_FILE), '');
    const c = capture();
    expect(await runAuditVerify({ dataDir: d }, c.io)).toBe(1);
    expect(c.out).toEqual([]);
    expect(c.err.join('\n')).toMatch(/CAMVEIL_E_STORE_CORRUPT: .*camveil\.db is empty/);
  });
});
