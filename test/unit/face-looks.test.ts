import { describe, expect, it } from 'vitest';
import { PersonFaceLooks } from '../../src/analysis/faces/face-looks.js';
import type { DetectedObject } from '../../src/analysis/frame-analyser.js';

const person = (trackId: string | undefined, x = 0): DetectedObject => ({
  label: 'person',
  cocoClass: 'person',
  score: 0.8,
  box: { x, y: 0, width: 10, height: 30 },
  ...(trackId === undefined ? {} : { trackId }),
});

describe('PersonFaceLooks: faces are looked for a few times per person track, then now and then', () => {
  it('a person who stays in view is looked at on 3 frames in a row, then every 5 s', () => {
    const looks = new PersonFaceLooks();
    const lookedAt: number[] = [];
    // Two frames a second for 20 s.
    for (let at = 0; at < 20_000; at += 500) if (looks.due([person('trk_a')], at).length > 0) lookedAt.push(at);
    expect(lookedAt.slice(0, 3)).toEqual([0, 500, 1000]);
    expect(lookedAt.slice(3)).toEqual([6000, 11_000, 16_000]);
  });

  it('each track is counted on its own: a newcomer gets its looks while the first waits', () => {
    const looks = new PersonFaceLooks();
    for (let at = 0; at < 1500; at += 500) looks.due([person('trk_a')], at);
    expect(looks.due([person('trk_a', 0), person('trk_b', 50)], 1500)).toEqual([person('trk_b', 50).box]);
  });

  it('a person without a track is always due', () => {
    const looks = new PersonFaceLooks();
    for (let at = 0; at < 10_000; at += 500) expect(looks.due([person(undefined)], at)).toHaveLength(1);
  });
});
