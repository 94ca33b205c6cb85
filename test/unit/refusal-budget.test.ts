import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { ControlPlane } from '../../src/control/dispatcher.js';
import { KeyRegistry } from '../../src/control/key-registry.js';
import { RefusalBudget } from '../../src/control/refusal-budget.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { replyOf, testHubKeys } from '../harness/hub-keys.js';
import { RecordingControlClient } from '../harness/recording-control-client.js';

const BASE = 'camveil';
const HUB = 'budget-hub';
const NOW = 1_800_000_000_000;

/** An unsigned `status` request: allowed without a signature, so the hub must answer it. */
function statusRequest(transaction: string): Buffer {
  const payload = { v: 2, hub: HUB, base: BASE, command: 'status', transaction, seq: 1, ts: NOW };
  return Buffer.from(JSON.stringify({ payload: Buffer.from(JSON.stringify(payload)).toString('base64') }));
}

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('refusal budget', () => {
  it('counts tokens on its own clock: a burst, then the rate, never more', () => {
    let t = 0;
    const budget = new RefusalBudget({ perSecond: 10, burst: 3, now: () => t });
    expect([budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([true, true, true, false]);
    t += 100; // one token's worth
    expect([budget.take(), budget.take()]).toEqual([true, false]);
    t += 60_000; // refills to the burst, not beyond
    expect([budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([true, true, true, false]);
    expect(budget.suppressed).toBe(3);
  });

  it('a flood of garbage gets replies only up to the budget, every refusal is still told, and valid requests are always answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'camveil-budget-'));
    dirs.push(dir);
    const db = openDatabase(dir);
    try {
      const keys = await testHubKeys(HUB, BASE);
      const phone = await generateX25519Identity();
      const phoneRecipient = await identityToRecipient(phone);
      const client = new RecordingControlClient();
      let t = 0;
      const refused: string[] = [];
      const plane = new ControlPlane({
        hub: keys.hub,
        client,
        baseTopic: BASE,
        hubId: HUB,
        registry: new KeyRegistry(db),
        audit: new AuditLog(db),
        logger: silentLogger(),
        now: () => NOW,
        recipients: () => [phoneRecipient],
        refusalBudget: new RefusalBudget({ perSecond: 10, burst: 30, now: () => t }),
        onRefused: (code) => refused.push(code),
      });
      for (let i = 0; i < 200; i++) await plane.handle(`${BASE}/${HUB}/request/status`, Buffer.from(`garbage ${i}`));
      expect(refused).toHaveLength(200);
      expect(client.published).toHaveLength(30);

      client.published.length = 0;
      await plane.handle(`${BASE}/${HUB}/request/status`, statusRequest('still-answered'));
      expect(client.published).toHaveLength(1);
      const reply = await replyOf(client.published[0]!.message, keys.pinned, NOW, phone);
      expect(reply).toMatchObject({ status: 'ok', transaction: 'still-answered' });

      client.published.length = 0;
      t += 1_000;
      for (let i = 0; i < 50; i++) await plane.handle(`${BASE}/${HUB}/request/status`, Buffer.from(`more garbage ${i}`));
      expect(client.published).toHaveLength(10);
      expect(refused).toHaveLength(250);
    } finally {
      db.close();
    }
  });
});
