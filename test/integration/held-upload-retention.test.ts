import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { ConsentLedger, LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { heldUploadCutoff, UNSIGNED_ACTOR } from '../../src/policy/withdrawal.js';
import { openDatabase } from '../../src/store/database.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { waitFor } from '../harness/wait.js';

const DAY = 86_400_000;
const POLICY = '2021-10-31';
const WHO = { requestDigest: 'a'.repeat(64) };

/**
 * The upload queue an unsigned withdrawal holds follows the store's own retention: held uploads queued longer
 * ago than `storage.retentionDays` are deleted by the retention sweep (row and staged file), audited; younger
 * ones stay held. A queue that is not held (cloud mode) is not touched by it. The real gateway on a real
 * database; the ledger and the outbox are written as a previous run would have left them.
 */
describe('held upload queue retention', () => {
  let root: string;
  let recipient: string;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-held-retention-'));
    recipient = await identityToRecipient(await generateX25519Identity());
    writeFileSync(join(root, 'token'), 'held-token\n', { mode: 0o600 });
  });

  afterAll(() => {
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  /** A data directory whose ledger ends with `last` on cloudUpload and whose outbox holds one old and one new upload. */
  function previousRun(hubId: string, last: 'unsigned-withdrawal' | 'grant'): { dataDir: string; old: string; fresh: string; staged: (id: string) => string } {
    const dataDir = join(root, hubId);
    const db = openDatabase(dataDir);
    try {
      const ledger = new ConsentLedger(db);
      ledger.acceptPolicy(POLICY, { actor: LOCAL_OPERATOR, ...WHO });
      ledger.grant('cloudUpload', { actor: LOCAL_OPERATOR, policyVersion: POLICY, ...WHO });
      if (last === 'unsigned-withdrawal') ledger.withdraw('cloudUpload', { actor: UNSIGNED_ACTOR, policyVersion: POLICY, ...WHO });
      const staging = join(dataDir, 'outbox');
      mkdirSync(staging, { recursive: true, mode: 0o700 });
      const staged = (id: string) => join(staging, `${id}.age`);
      const old = newObjectId();
      const fresh = newObjectId();
      for (const [id, at] of [[old, Date.now() - 40 * DAY], [fresh, Date.now() - 2 * DAY]] as const) {
        writeFileSync(staged(id), 'age-encryption.org/v1\n(sealed clip)\n', { mode: 0o600 });
        new Outbox(db, { now: () => at }).enqueue({ objectId: id, path: staged(id), bytes: 30, kind: 'clip', cameraId: 'front' });
      }
      return { dataDir, old, fresh, staged };
    } finally {
      db.close();
    }
  }

  async function runOnce(hubId: string, dataDir: string): Promise<{ rows: string[]; deletions: object[] }> {
    const config = validateConfig(
      {
        hub: { id: hubId, region: 'DE' },
        dataDir,
        household: { recipients: [recipient] },
        storage: { retentionDays: 30 },
        uplink: { enabled: true, endpoints: { eu: 'http://127.0.0.1:9' }, tokenFile: join(root, 'token') },
      },
      'test',
      root,
    );
    const gateway = new Gateway({ config, logger: createLogger({ level: 'silent' }) });
    try {
      await gateway.start();
      // The sweep runs right after start (then hourly); its report is in the state once it has run.
      await waitFor('the first retention sweep', () => gateway.state().storage?.lastRetention !== undefined, 30_000);
    } finally {
      await gateway.stop();
    }
    const db = new Database(join(dataDir, 'camveil.db'), { readonly: true });
    try {
      const rows = (db.prepare("SELECT object_id FROM uplink_outbox WHERE state = 'queued' ORDER BY created_at").all() as Array<{ object_id: string }>).map((r) => r.object_id);
      const deletions = (db.prepare("SELECT record FROM audit WHERE type = 'deletion'").all() as Array<{ record: string }>).map((r) => (JSON.parse(r.record) as { details: object }).details);
      return { rows, deletions };
    } finally {
      db.close();
    }
  }

  it('held by an unsigned stop: uploads queued longer ago than storage.retentionDays are deleted and audited, younger ones stay held', async () => {
    const { dataDir, old, fresh, staged } = previousRun('held-hub', 'unsigned-withdrawal');
    const { rows, deletions } = await runOnce('held-hub', dataDir);
    expect(rows).toEqual([fresh]);
    expect(existsSync(staged(old))).toBe(false);
    expect(existsSync(staged(fresh))).toBe(true);
    expect(deletions).toEqual([{ scope: 'retention', count: 1, reason: 'held-upload-retention', objectIds: [old] }]);
  }, 120_000);

  it('not held (cloud mode): the retention sweep leaves the queue to the uploader', async () => {
    const { dataDir, old, fresh, staged } = previousRun('cloud-hub', 'grant');
    const { rows, deletions } = await runOnce('cloud-hub', dataDir);
    expect(rows.sort()).toEqual([old, fresh].sort());
    expect(existsSync(staged(old))).toBe(true);
    expect(deletions).toEqual([]);
  }, 120_000);

  it('the cutoff exists only while cloudUpload is stopped by unsigned withdrawals alone', () => {
    const now = Date.parse('2026-06-01T00:00:00Z');
    const at = new Date(now - DAY).toISOString();
    const record = (seq: number, kind: 'grant' | 'withdraw', actor: string) => ({ seq, kind, consent: 'cloudUpload' as const, actor, at, policyVersion: POLICY, requestDigest: WHO.requestDigest });
    expect(heldUploadCutoff([record(1, 'grant', LOCAL_OPERATOR), record(2, 'withdraw', UNSIGNED_ACTOR)], 30, now)).toBe(now - 30 * DAY);
    expect(heldUploadCutoff([record(1, 'grant', LOCAL_OPERATOR)], 30, now)).toBeUndefined();
    expect(heldUploadCutoff([record(1, 'grant', LOCAL_OPERATOR), record(2, 'withdraw', LOCAL_OPERATOR)], 30, now)).toBeUndefined();
  });
});
