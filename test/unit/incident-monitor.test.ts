import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FaceModelHealth } from '../../src/analysis/faces/model-health.js';
import { AuditLog } from '../../src/audit/audit-log.js';
import { auditIncidents, burstReasonOf, DEFAULT_BURSTS, IncidentMonitor } from '../../src/control/incident-monitor.js';
import { CamveilError } from '../../src/errors.js';
import { EventBus, INCIDENT_REASONS, type CamveilEvents } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';

function collect(bus: EventBus): Array<CamveilEvents['incident']> {
  const seen: Array<CamveilEvents['incident']> = [];
  bus.on('incident', (e) => seen.push(e));
  return seen;
}

describe('IncidentMonitor: bursts of refused requests', () => {
  it('maps refusal codes to bursts; other refusals count for nothing', () => {
    expect(burstReasonOf('CAMVEIL_E_SIGNATURE_INVALID')).toBe('bad-signatures');
    expect(burstReasonOf('CAMVEIL_E_UNKNOWN_KEY')).toBe('bad-signatures');
    expect(burstReasonOf('CAMVEIL_E_PAIRING_FAILED')).toBe('bad-pairing-proofs');
    expect(burstReasonOf('CAMVEIL_E_REQUEST_INVALID')).toBeUndefined();
    expect(burstReasonOf('CAMVEIL_E_NOT_AUTHORISED')).toBeUndefined();
  });

  it.each([
    ['bad-signatures', 'CAMVEIL_E_SIGNATURE_INVALID'],
    ['bad-pairing-proofs', 'CAMVEIL_E_PAIRING_FAILED'],
  ] as const)('%s: emitted at the threshold within the window, once per window however long the flood', (reason, code) => {
    const bus = new EventBus();
    const seen = collect(bus);
    let now = 1_000_000;
    const monitor = new IncidentMonitor({ bus, now: () => now });
    const { threshold, windowMs } = DEFAULT_BURSTS[reason];
    // Spread out, the same number of failures is no burst.
    for (let i = 0; i < threshold; i++) {
      monitor.refused(code);
      now += windowMs / (threshold - 1) + 1;
    }
    expect(seen).toEqual([]);
    now += windowMs;
    for (let i = 0; i < threshold - 1; i++) monitor.refused(code);
    expect(seen).toEqual([]);
    monitor.refused(code);
    expect(seen).toEqual([{ reason, detail: `${threshold} refused within ${windowMs / 1000} s` }]);
    // A flood in the same window: no more incidents.
    for (let i = 0; i < 100; i++) monitor.refused(code);
    expect(seen).toHaveLength(1);
    // Next window, another burst: one more.
    now += windowMs;
    for (let i = 0; i < threshold; i++) monitor.refused(code);
    expect(seen).toHaveLength(2);
    // Other refusals never count.
    for (let i = 0; i < 50; i++) monitor.refused('CAMVEIL_E_REQUEST_INVALID');
    expect(seen).toHaveLength(2);
  });
});

describe('incidents are audited, rate-limited per reason', () => {
  let dir: string;
  let db: Database.Database;
  let audit: AuditLog;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'camveil-incidents-'));
    db = openDatabase(dir);
    audit = new AuditLog(db);
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const incidentRecords = () => audit.entries().filter((e) => e.type === 'incident').map((e) => e.details);

  it.each(INCIDENT_REASONS.map((r) => [r]))('%s: one audit record per minute, the rest counted in the next', (reason) => {
    const bus = new EventBus();
    let now = 5_000_000;
    const stop = auditIncidents(bus, audit, { now: () => now });
    bus.emit('incident', { reason, detail: 'first' });
    bus.emit('incident', { reason, detail: 'again' });
    bus.emit('incident', { reason, detail: 'and again' });
    expect(incidentRecords()).toEqual([{ reason }]);
    // Another reason is not held back by this one.
    const other = INCIDENT_REASONS.find((r) => r !== reason)!;
    bus.emit('incident', { reason: other });
    expect(incidentRecords()).toEqual([{ reason }, { reason: other }]);
    now += 60_000;
    bus.emit('incident', { reason });
    expect(incidentRecords()).toEqual([{ reason }, { reason: other }, { reason, suppressed: 2 }]);
    // The detail text (free words) never reaches the audit log; the chain stays intact.
    expect(JSON.stringify(audit.entries())).not.toContain('again');
    expect(audit.verify().ok).toBe(true);
    stop();
    bus.emit('incident', { reason });
    expect(incidentRecords()).toHaveLength(3);
  });

  it('model-tampered: the face worker reporting CAMVEIL_E_MODEL_INVALID emits it once per outage, and it is audited', () => {
    const bus = new EventBus();
    const seen = collect(bus);
    auditIncidents(bus, audit);
    const health = new FaceModelHealth({ bus, logger: silentLogger() });
    const tampered = new CamveilError('CAMVEIL_E_MODEL_INVALID', 'model file hash differs');
    health.report(tampered);
    health.report(tampered);
    expect(seen.map((e) => e.reason)).toEqual(['model-tampered']);
    expect(incidentRecords()).toEqual([{ reason: 'model-tampered' }]);
  });
});
