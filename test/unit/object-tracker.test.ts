import { describe, expect, it } from 'vitest';
import type { Box } from '../../src/analysis/box.js';
import { ObjectTracker, TRACK_ID_PATTERN, type TrackInfo, type TrackerDetection } from '../../src/analysis/objects/object-tracker.js';

const FRAME_MS = 500; // 2 analysed frames a second
const person = (box: Box, score = 0.8): TrackerDetection => ({ label: 'person', cocoClass: 'person', score, box });
const car = (box: Box, score = 0.9, cocoClass = 'car'): TrackerDetection => ({ label: 'vehicle', cocoClass, score, box });

/** Runs frames through a tracker and gathers everything it said. */
function run(tracker: ObjectTracker, frames: TrackerDetection[][], startMs = 0) {
  const confirmed: TrackInfo[] = [];
  const ended: TrackInfo[] = [];
  const ids: (string | undefined)[][] = [];
  frames.forEach((detections, i) => {
    const u = tracker.update(startMs + i * FRAME_MS, detections);
    confirmed.push(...u.confirmed);
    ended.push(...u.ended);
    expect(u.objects).toHaveLength(detections.length);
    ids.push(u.objects.map((o) => o.trackId));
  });
  return { confirmed, ended, ids };
}

/** A person walking left to right: 40×100 px, 30 px a frame. */
const walking = (i: number, x0 = 20, y = 200): Box => ({ x: x0 + 30 * i, y, width: 40, height: 100 });

describe('ObjectTracker', () => {
  it('follows one person walking through 10 frames as one track, confirmed once, on the second frame, ended after maxAgeMs', () => {
    const tracker = new ObjectTracker();
    const scores = [0.5, 0.6, 0.9, 0.7, 0.6, 0.8, 0.7, 0.6, 0.5, 0.55];
    const { confirmed, ended, ids } = run(tracker, scores.map((s, i) => [person(walking(i), s)]));
    expect(new Set(ids.flat()).size).toBe(1);
    expect(ids[0]![0]).toMatch(TRACK_ID_PATTERN);
    expect(confirmed).toHaveLength(1);
    expect(confirmed[0]).toMatchObject({ trackId: ids[0]![0], label: 'person', cocoClass: 'person', firstAt: 0, lastAt: FRAME_MS });
    expect(ended).toEqual([]);
    // then nothing: it ends once 5 s have passed since it was last seen, and only then
    const last = 9 * FRAME_MS;
    expect(tracker.update(last + 4_999, []).ended).toEqual([]);
    const end = tracker.update(last + 5_000, []);
    expect(end.ended).toHaveLength(1);
    expect(end.ended[0]).toMatchObject({ trackId: ids[0]![0], bestScore: 0.9, bestBox: walking(2), firstAt: 0, lastAt: last });
    expect(tracker.size).toBe(0);
  });

  it('never confirms a single-frame false positive, and forgets it', () => {
    const tracker = new ObjectTracker();
    const { confirmed, ended } = run(tracker, [[person({ x: 300, y: 100, width: 30, height: 60 })], [], [], [], []]);
    expect(confirmed).toEqual([]);
    expect(ended).toEqual([]);
    expect(tracker.size).toBe(0);
    expect(tracker.end()).toEqual([]);
  });

  it('confirms on 2 of 3 frames: seen, missed, seen', () => {
    const tracker = new ObjectTracker();
    const box = { x: 300, y: 100, width: 30, height: 60 };
    const { confirmed } = run(tracker, [[person(box)], [], [person(box)]]);
    expect(confirmed).toHaveLength(1);
    // seen, missed, missed, seen: two tracks, neither confirmed
    const other = new ObjectTracker();
    const again = run(other, [[person(box)], [], [], [person(box)]]);
    expect(again.confirmed).toEqual([]);
    expect(new Set(again.ids.flat()).size).toBe(2);
  });

  it('keeps two people walking side by side, and two crossing, as two tracks', () => {
    const tracker = new ObjectTracker();
    const side = run(tracker, Array.from({ length: 8 }, (_, i) => [person(walking(i, 20, 50)), person(walking(i, 20, 220))]));
    expect(new Set(side.ids.map((f) => f[0])).size).toBe(1);
    expect(new Set(side.ids.map((f) => f[1])).size).toBe(1);
    expect(side.ids[0]![0]).not.toBe(side.ids[0]![1]);
    expect(side.confirmed).toHaveLength(2);

    // opposite directions on nearly the same line: each keeps its own id through the crossing
    const crossing = new ObjectTracker();
    const frames = Array.from({ length: 12 }, (_, i) => [person({ x: 20 + 40 * i, y: 200, width: 40, height: 100 }), person({ x: 460 - 40 * i, y: 210, width: 40, height: 100 })]);
    const c = run(crossing, frames);
    expect(new Set(c.ids.map((f) => f[0])).size).toBe(1);
    expect(new Set(c.ids.map((f) => f[1])).size).toBe(1);
    expect(c.confirmed).toHaveLength(2);
  });

  it('keeps a car and a person crossing on their own tracks (matching is per label)', () => {
    const tracker = new ObjectTracker();
    const frames = Array.from({ length: 10 }, (_, i) => {
      const carBox = { x: 600 - 60 * i, y: 180, width: 120, height: 70 };
      const personBox = { x: 200 + 10 * i, y: 160, width: 40, height: 100 };
      // one frame sees only the car, right where the person is
      return i === 5 ? [car(carBox)] : [car(carBox), person(personBox)];
    });
    const { ids, confirmed } = run(tracker, frames);
    const carIds = new Set(ids.map((f) => f[0]));
    const personIds = new Set(ids.filter((f) => f.length === 2).map((f) => f[1]));
    expect(carIds.size).toBe(1);
    expect(personIds.size).toBe(1);
    expect([...carIds][0]).not.toBe([...personIds][0]);
    expect(confirmed.map((t) => t.label).sort()).toEqual(['person', 'vehicle']);
  });

  it('follows a small, fast object that never overlaps its last box (centre distance)', () => {
    const tracker = new ObjectTracker();
    const cat = (i: number): TrackerDetection => ({ label: 'animal', cocoClass: 'cat', score: 0.7, box: { x: 10 + 25 * i, y: 300, width: 20, height: 15 } });
    const { ids, confirmed } = run(tracker, Array.from({ length: 6 }, (_, i) => [cat(i)]));
    expect(new Set(ids.flat()).size).toBe(1);
    expect(confirmed).toHaveLength(1);
    // but not one that jumps across the frame
    const jumpy = new ObjectTracker();
    const j = run(jumpy, [[cat(0)], [{ ...cat(0), box: { x: 500, y: 20, width: 20, height: 15 } }]]);
    expect(new Set(j.ids.flat()).size).toBe(2);
    expect(j.confirmed).toEqual([]);
  });

  it('keeps one vehicle track when the class changes (car, then truck), reporting the best class', () => {
    const tracker = new ObjectTracker();
    const box = (i: number): Box => ({ x: 100 + 20 * i, y: 100, width: 150, height: 80 });
    const { ids } = run(tracker, [[car(box(0), 0.6)], [car(box(1), 0.8, 'truck')], [car(box(2), 0.7)]]);
    expect(new Set(ids.flat()).size).toBe(1);
    const [ended] = tracker.end(10_000);
    expect(ended).toMatchObject({ label: 'vehicle', cocoClass: 'truck', bestScore: 0.8, bestBox: box(1) });
  });

  it('end() reports the confirmed tracks and forgets all; clear() forgets silently', () => {
    const tracker = new ObjectTracker();
    run(tracker, [[person(walking(0)), car({ x: 400, y: 50, width: 100, height: 60 })], [person(walking(1))]]);
    expect(tracker.size).toBe(2);
    expect(tracker.end(2_000).map((t) => t.label)).toEqual(['person']);
    expect(tracker.size).toBe(0);
    run(tracker, [[person(walking(0))], [person(walking(1))]]);
    tracker.clear();
    expect(tracker.size).toBe(0);
    expect(tracker.end()).toEqual([]);
    // a new track after clear() gets a new id and is confirmed again
    const again = run(tracker, [[person(walking(0))], [person(walking(1))]]);
    expect(again.confirmed).toHaveLength(1);
  });

  it('confirms a track once even when it is missed and found again within maxAgeMs', () => {
    const tracker = new ObjectTracker();
    const frames = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => (i === 3 || i === 4 ? [] : [person(walking(i))]));
    const { confirmed, ids } = run(tracker, frames);
    expect(confirmed).toHaveLength(1);
    expect(new Set(ids.flat().filter((id) => id !== undefined)).size).toBe(1);
  });

  it('keeps one track for a person who walks, then stops, then is seen again after a gap', () => {
    const tracker = new ObjectTracker();
    const stop = walking(4);
    const frames = [0, 1, 2, 3, 4].map((i) => [person(walking(i))]);
    const first = run(tracker, frames);
    // stands still: no frames for 3 s (no motion), then seen where they stopped
    const u = tracker.update(4 * FRAME_MS + 3_000, [person(stop)]);
    expect(u.objects[0]!.trackId).toBe(first.ids[0]![0]);
    expect(u.confirmed).toEqual([]);
  });
});
