import { describe, expect, it } from 'vitest';
import { SegmentRing } from '../../src/recording/segment-ring.js';

describe('SegmentRing', () => {
  it('keeps fragment start times in whole milliseconds when the sample table gives fractional durations', () => {
    // 15 fps in a 1/15360 timescale: frames of 66.67 ms; a fragment cut at a loop boundary is not a whole second.
    const ring = new SegmentRing({ preRollMs: 5_000, maxBytes: 1 << 20 });
    const fragment = ring.push(Buffer.alloc(10), 933.3333333, 1_800_000_001_000);
    // The store keeps capture times in a STRICT INTEGER column: a fractional start lost every clip that began there.
    expect(Number.isInteger(fragment.start)).toBe(true);
    expect(fragment.start).toBe(1_800_000_000_067);
  });
});
