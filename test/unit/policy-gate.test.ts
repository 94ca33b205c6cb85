import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { silentLogger } from '../../src/log.js';
import { ConsentLedger } from '../../src/policy/consent-ledger.js';
import { ConsentService, localRequest, type ModeChange } from '../../src/policy/consent-service.js';
import { PolicyGate } from '../../src/policy/gate.js';
import { SHIPPED_POLICY_VERSIONS } from '../../src/policy/policy-history.js';
import { rulesFor, type MatchedRegionRule } from '../../src/policy/region-rules.js';
import { openDatabase } from '../../src/store/database.js';
import { waitFor } from '../harness/wait.js';

const OBJECT = 'a'.repeat(26);
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function hub(region = 'DE', dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-gate-')), regionRules?: (region: string) => MatchedRegionRule) {
  dirs.push(dataDir);
  const db = openDatabase(dataDir);
  const audit = new AuditLog(db);
  const ledger = new ConsentLedger(db);
  const inForce = SHIPPED_POLICY_VERSIONS.at(-1)!;
  const gate = new PolicyGate({
    ledger,
    region,
    policy: { inForce, history: SHIPPED_POLICY_VERSIONS },
    forcedLocalOnly: false,
    cameras: () => new Map([['front', { faceRecognitionEnabled: true, faceCapable: true }]]),
    audit,
    cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
    ...(regionRules === undefined ? {} : { rulesFor: regionRules }),
  });
  const changes: ModeChange[] = [];
  const stops: string[] = [];
  const consent = new ConsentService({
    db,
    ledger,
    gate,
    audit,
    policyVersion: inForce.version,
    logger: silentLogger(),
    enforce: (c) => {
      changes.push(c);
      return Promise.resolve();
    },
    pollMs: 20,
    onUnsignedStop: (c) => stops.push(c),
  });
  return { dataDir, db, audit, ledger, gate, consent, changes, stops };
}

describe('PolicyGate and ConsentService', () => {
  it('a fresh hub uploads nothing, records nothing, and is local-only', async () => {
    const h = hub();
    await h.consent.start();
    expect(h.gate.mayUpload({ objectId: OBJECT, kind: 'clip' })).toEqual({ allowed: false, reason: 'policy-not-accepted' });
    expect(h.gate.mayRecordLocally('front').allowed).toBe(false);
    expect(h.consent.mode.mode).toBe('local-only');
    expect(h.changes).toEqual([{ from: undefined, to: 'local-only', reason: 'policy-not-accepted', hold: false }]);
    h.consent.stop();
  });

  it('allows uploads once the policy is accepted and cloudUpload granted; audits every decision', async () => {
    const h = hub();
    await h.consent.start();
    await h.consent.acceptPolicy('2021-10-31', localRequest('accept'));
    await h.consent.grant('cloudUpload', localRequest('grant'));
    expect(h.consent.mode).toEqual({ mode: 'cloud', reason: 'ok' });
    expect(h.gate.mayUpload({ objectId: OBJECT, kind: 'clip', cameraId: 'front' }).allowed).toBe(true);
    // Face data needs its own consent, whatever cloudUpload says.
    expect(h.gate.mayUpload({ objectId: OBJECT, kind: 'face-embedding' }).allowed).toBe(false);
    expect(h.gate.mayUpload({ objectId: OBJECT, kind: 'weird' })).toEqual({ allowed: false, reason: 'unknown-data-kind' });
    const types = h.audit.entries({}).map((e) => e.type);
    expect(types).toEqual(['policy.accepted', 'consent.changed', 'mode.changed', 'upload.allowed', 'upload.denied']);
    expect(h.audit.verify().ok).toBe(true);
    h.consent.stop();
  });

  it('enforces a withdrawal written by another process within its polling interval', async () => {
    const h = hub();
    await h.consent.start();
    await h.consent.acceptPolicy('2021-10-31', localRequest('accept'));
    await h.consent.grant('cloudUpload', localRequest('grant'));
    // A second connection, as `camveil consent withdraw` in another process would have.
    const other = hub('DE', h.dataDir);
    await other.consent.withdraw('cloudUpload', localRequest('withdraw'));
    await waitFor('the withdrawal to be enforced', () => h.changes.at(-1)?.to === 'local-only', 20_000);
    expect(h.changes.at(-1)).toEqual({ from: 'cloud', to: 'local-only', reason: 'cloud-upload-withdrawn', hold: false });
    expect(h.gate.mayUpload({ objectId: OBJECT, kind: 'clip' }).allowed).toBe(false);
    h.consent.stop();
  });

  it('an unsigned cloudUpload withdrawal holds the queue; a signed one after it is enforced again, destroying', async () => {
    const h = hub();
    await h.consent.start();
    await h.consent.acceptPolicy('2021-10-31', localRequest('accept'));
    await h.consent.grant('cloudUpload', localRequest('grant'));
    await h.consent.withdraw('cloudUpload', { actor: 'unsigned-request', requestDigest: 'b'.repeat(64) });
    expect(h.changes.at(-1)).toEqual({ from: 'cloud', to: 'local-only', reason: 'cloud-upload-withdrawn', hold: true });
    expect(h.stops).toEqual(['cloudUpload']);
    // Same mode, same reason, but no longer held: enforced again.
    await h.consent.withdraw('cloudUpload', { actor: 'abcdefghijklmnop', requestDigest: 'c'.repeat(64) });
    expect(h.changes.at(-1)).toEqual({ from: 'local-only', to: 'local-only', reason: 'cloud-upload-withdrawn', hold: false });
    expect(h.stops).toEqual(['cloudUpload']);
    h.consent.stop();
  });

  it('fails closed: an unreadable ledger means local-only and no uploads', async () => {
    const h = hub();
    await h.consent.acceptPolicy('2021-10-31', localRequest('accept'));
    await h.consent.grant('cloudUpload', localRequest('grant'));
    // Corrupt the ledger behind the gate's back (the append-only triggers are dropped first).
    h.db.exec("DROP TRIGGER IF EXISTS policy_consent_ledger_no_update; DROP TRIGGER IF EXISTS policy_consent_ledger_no_delete;");
    for (const t of h.db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'policy_consent_ledger'").all() as Array<{ name: string }>) {
      h.db.exec(`DROP TRIGGER ${t.name}`);
    }
    h.db.exec("UPDATE policy_consent_ledger SET consent = NULL WHERE kind = 'grant'");
    expect(h.gate.mayUpload({ objectId: OBJECT, kind: 'clip' })).toEqual({ allowed: false, reason: 'consent-unreadable' });
    expect(h.gate.mode().mode).toBe('local-only');
    // Withdrawals are still accepted.
    await h.consent.withdraw('cloudUpload', localRequest('withdraw'));
  });

  it('the mode survives a restart: it is derived from the ledger, not remembered', async () => {
    const h = hub();
    await h.consent.acceptPolicy('2021-10-31', localRequest('accept'));
    await h.consent.grant('cloudUpload', localRequest('grant'));
    await h.consent.withdraw('cloudUpload', localRequest('withdraw'));
    h.db.close();
    const again = hub('DE', h.dataDir);
    await again.consent.start();
    expect(again.consent.mode).toEqual({ mode: 'local-only', reason: 'cloud-upload-withdrawn' });
    again.consent.stop();
  });

  it('the region decides: face recognition is refused where the region rules say so (unknown region: strictest)', () => {
    const h = hub('ZZ');
    expect(h.gate.mayRecogniseFaces('front')).toEqual({ allowed: false, reason: 'region-prohibits-face-recognition' });
  });

  it('object detection: allowed with nothing granted, a withdrawal or an unknown region; refused only by a region that forbids it', async () => {
    const h = hub();
    // nothing granted, no policy accepted
    expect(h.gate.mayDetectObjects('front')).toEqual({ allowed: true, reason: 'ok' });
    await h.consent.acceptPolicy('2021-10-31', localRequest('accept'));
    for (const name of ['cloudUpload', 'faceRecognition', 'localRecording'] as const) {
      await h.consent.grant(name, localRequest('grant'));
      await h.consent.withdraw(name, localRequest('withdraw'));
    }
    expect(h.gate.mayDetectObjects('front')).toEqual({ allowed: true, reason: 'ok' });
    expect(h.gate.mayDetectObjects('no-such-camera')).toEqual({ allowed: true, reason: 'ok' });
    expect(hub('ZZ').gate.mayDetectObjects('front')).toEqual({ allowed: true, reason: 'ok' });
    // a test region whose rules forbid it
    const forbidding = hub('DE', undefined, (region) => ({ ...rulesFor(region), objectDetection: 'prohibited' }));
    expect(forbidding.gate.mayDetectObjects('front')).toEqual({ allowed: false, reason: 'region-prohibits-object-detection' });
    expect(forbidding.gate.ask({ kind: 'alert', alertKind: 'object' })).toEqual({ allowed: false, reason: 'region-prohibits-object-detection' });
    expect(forbidding.gate.ask({ kind: 'alert', alertKind: 'motion' }).allowed).toBe(true);
  });
});
