import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClockSteps } from '../../src/clock.js';
import { IncidentMonitor } from '../../src/control/incident-monitor.js';
import { IncidentLimiter } from '../../src/control/sealed-events.js';
import { EventBus, type CamveilEvents } from '../../src/events.js';
import { openDatabase } from '../../src/store/database.js';
import { Outbox } from '../../src/uplink/outbox.js';

const HOUR = 3_600_000;

afterEach(() => {
  vi.useRealTimers();
});

describe('ClockSteps: steps of the wall clock against elapsed time', () => {
  it('says nothing for time passing or slewing, and the size of a step once', () => {
    let wall = 1_000_000;
    let mono = 5;
    const steps = new ClockSteps({ wall: () => wall, monotonic: () => mono });
    wall += 10_000;
    mono += 10_000;
    expect(steps.step()).toBe(0);
    // Slewing a little at a time never adds up to a step.
    for (let i = 0; i < 100; i++) {
      wall += 1_050;
      mono += 1_000;
      expect(steps.step()).toBe(0);
    }
    wall -= HOUR;
    expect(steps.step()).toBe(-HOUR);
    expect(steps.step()).toBe(0);
    wall += HOUR + 500;
    mono += 500;
    expect(steps.step()).toBe(HOUR);
  });
});

describe('a step of the wall clock back an hour', () => {
  it('the outbox keeps each due time as far off as it was (an item due in 30 s is not an hour and 30 s away)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'camveil-clock-'));
    try {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(10 * HOUR);
      const db = openDatabase(dir);
      // Elapsed time keeps running while the fake wall clock stands still; whatever elapses here shortens the
      // wait by as much (it really passed), so the bound below is this measured span, not a guess.
      const started = performance.now();
      const outbox = new Outbox(db);
      outbox.enqueue({ objectId: 'a'.repeat(26), path: join(dir, 'a'), bytes: 1, kind: 'clip' });
      outbox.markUploading('a'.repeat(26));
      outbox.retryLater('a'.repeat(26), { code: 'CAMVEIL_E_CLOUD_UNAVAILABLE', message: '503' }, 30_000);
      const steps: number[] = [];
      outbox.onClockStep((s) => steps.push(s.stepMs));
      vi.setSystemTime(9 * HOUR);
      outbox.followClock();
      // The fake wall clock stands still while elapsed time moves: the step is an hour within a few ms.
      expect(steps.map((ms) => Math.round(ms / 1000))).toEqual([-3600]);
      const elapsed = performance.now() - started;
      const wait = outbox.get('a'.repeat(26))!.nextAttemptAt - Date.now();
      expect(wait).toBeGreaterThanOrEqual(30_000 - Math.ceil(elapsed) - 1);
      expect(wait).toBeLessThanOrEqual(30_000);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('security events are not silenced for the hour: the limit window runs on elapsed time', () => {
    const limiter = new IncidentLimiter(60_000);
    expect(limiter.admit({ reason: 'bad-signatures' }, 10 * HOUR, 0)).toMatchObject({ at: 10 * HOUR });
    expect(limiter.admit({ reason: 'bad-signatures' }, 10 * HOUR + 1_000, 1_000)).toBeUndefined();
    // 61 s later by elapsed time, the wall clock an hour back: a new window, and the event says the wall time.
    expect(limiter.admit({ reason: 'bad-signatures' }, 9 * HOUR + 61_000, 61_000)).toMatchObject({ at: 9 * HOUR + 61_000, suppressed: 1 });
  });

  it('a burst after the step is an incident, not part of a quiet window an hour long', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(10 * HOUR);
    const bus = new EventBus();
    const seen: Array<CamveilEvents['incident']> = [];
    bus.on('incident', (e) => seen.push(e));
    const monitor = new IncidentMonitor({ bus, rules: { 'bad-signatures': { threshold: 2, windowMs: 50 } } });
    monitor.refused('CAMVEIL_E_SIGNATURE_INVALID');
    monitor.refused('CAMVEIL_E_SIGNATURE_INVALID');
    expect(seen).toHaveLength(1);
    vi.setSystemTime(9 * HOUR);
    await new Promise((r) => setTimeout(r, 120));
    monitor.refused('CAMVEIL_E_SIGNATURE_INVALID');
    monitor.refused('CAMVEIL_E_SIGNATURE_INVALID');
    expect(seen).toHaveLength(2);
  });
});
