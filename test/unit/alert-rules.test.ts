import { describe, expect, it } from 'vitest';
import { passesOnlyFor } from '../../src/control/alert-rules.js';
import { DetectionCounts } from '../../src/control/detection-counts.js';
import { RecentIds } from '../../src/control/recent-ids.js';
import { EventBus } from '../../src/events.js';
import { ALERT_KINDS } from '../../src/policy/vocabulary.js';

describe('alerts.onlyFor', () => {
  it('empty: every alert passes, as before', () => {
    for (const kind of ALERT_KINDS) expect(passesOnlyFor([], kind, 'vehicle'), kind).toBe(true);
  });

  it('[person]: no motion alert, object alerts only for people; faces and camera-offline unaffected', () => {
    expect(passesOnlyFor(['person'], 'motion')).toBe(false);
    expect(passesOnlyFor(['person'], 'object', 'person')).toBe(true);
    expect(passesOnlyFor(['person'], 'object', 'vehicle')).toBe(false);
    expect(passesOnlyFor(['person'], 'object', 'animal')).toBe(false);
    expect(passesOnlyFor(['person'], 'object')).toBe(false);
    expect(passesOnlyFor(['person'], 'known-face')).toBe(true);
    expect(passesOnlyFor(['person'], 'unknown-face')).toBe(true);
    expect(passesOnlyFor(['person'], 'camera-offline')).toBe(true);
    expect(passesOnlyFor(['animal', 'vehicle'], 'object', 'animal')).toBe(true);
  });
});

describe('RecentIds', () => {
  it('admits an id once, and forgets the oldest past its capacity', () => {
    const ids = new RecentIds(2);
    expect([ids.admit('a'), ids.admit('a'), ids.admit('b'), ids.admit('c')]).toEqual([true, false, true, true]);
    expect(ids.size).toBe(2);
    // 'a' was forgotten (the oldest), 'c' is still remembered.
    expect([ids.admit('c'), ids.admit('a')]).toEqual([false, true]);
  });
});

describe('DetectionCounts', () => {
  const box = { x: 1, y: 2, width: 30, height: 60 };

  it('counts confirmed objects per camera pseudonym and label from the bus, each track once; nothing before start or after stop', () => {
    const bus = new EventBus();
    const counts = new DetectionCounts({ bus, cameraPseudonym: (id) => `cam_${id}`, now: () => 1000 });
    const confirmed = (cameraId: string, trackId: string, label: 'person' | 'vehicle', at: number) =>
      bus.emit('object.confirmed', { cameraId, trackId, label, cocoClass: label === 'person' ? 'person' : 'car', score: 0.8, box, at });
    confirmed('porch', 'trk_0', 'person', 500);
    expect(counts.snapshot()).toBeUndefined();
    counts.start();
    confirmed('porch', 'trk_1', 'person', 2000);
    confirmed('porch', 'trk_1', 'person', 2100);
    confirmed('porch', 'trk_2', 'person', 3000);
    confirmed('porch', 'trk_3', 'vehicle', 2500);
    // The same track id on another camera is another object.
    confirmed('drive', 'trk_1', 'vehicle', 4000);
    bus.emit('object.ended', { cameraId: 'porch', trackId: 'trk_1', label: 'person', at: 5000 });
    expect(counts.snapshot()).toEqual({
      since: 1000,
      cameras: {
        cam_porch: { person: { confirmed: 2, lastAt: 3000 }, vehicle: { confirmed: 1, lastAt: 2500 } },
        cam_drive: { vehicle: { confirmed: 1, lastAt: 4000 } },
      },
    });
    counts.stop();
    confirmed('porch', 'trk_9', 'person', 6000);
    expect(counts.snapshot()?.cameras.cam_porch?.person?.confirmed).toBe(2);
  });
});
