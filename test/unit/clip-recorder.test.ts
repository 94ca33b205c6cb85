import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { ClipRecorder } from '../../src/recording/clip-recorder.js';
import { CountingSink } from '../../src/recording/counting-sink.js';
import type { ClipStream, MediaSink, Snapshot } from '../../src/recording/sink.js';

const INIT = Buffer.from('init-segment');
const frag = (i: number, size = 1000) => Buffer.alloc(size, i & 0xff);

function recorder(sink: MediaSink, overrides: Partial<ConstructorParameters<typeof ClipRecorder>[0]> = {}) {
  return new ClipRecorder({ cameraId: 'cam', preRollMs: 2000, maxClipMs: 10_000, memoryCeilingBytes: 1 << 20, sink, logger: silentLogger(), tailWaitMs: 50, ...overrides });
}

/** A sink that takes clips but never reads them: the recorder must not hold more than its ceiling. */
class StuckSink implements MediaSink {
  readonly clips: ClipStream[] = [];
  clip(clip: ClipStream): Promise<void> {
    this.clips.push(clip);
    return clip.summary.then(() => undefined);
  }
  snapshot(_s: Snapshot): Promise<void> {
    return Promise.resolve();
  }
}

describe('ClipRecorder', () => {
  it('starts a clip with the init segment and the pre-roll, and ends it after the next fragment', async () => {
    const sink = new CountingSink();
    const rec = recorder(sink);
    rec.onInit(INIT);
    let at = 10_000;
    for (let i = 0; i < 6; i++) rec.onFragment(frag(i), 1000, (at += 1000));
    expect(rec.start('ev1', at)).toBe(true);
    expect(rec.start('ev2', at)).toBe(false);
    rec.onFragment(frag(6), 1000, (at += 1000));
    rec.end('motion-stopped');
    expect(rec.active).toBe(true);
    rec.onFragment(frag(7), 1000, (at += 1000));
    expect(rec.active).toBe(false);
    await rec.stop();
    // Pre-roll of 2 s with 1 s fragments: the two newest (the oldest starts exactly at now − 2 s), then two more.
    expect(sink.clips[0]).toMatchObject({ eventId: 'ev1', endedBy: 'motion-stopped', durationMs: 4000, bytes: INIT.length + 4000 });
  });

  it('never repeats a fragment in the next clip', async () => {
    const sink = new CountingSink();
    const rec = recorder(sink, { maxClipMs: 3000 });
    rec.onInit(INIT);
    let at = 0;
    for (let i = 0; i < 3; i++) rec.onFragment(frag(i), 1000, (at += 1000));
    rec.start('a', at);
    rec.onFragment(frag(3), 1000, (at += 1000)); // 2 s pre-roll + 1 s = 3 s: cut at max length
    expect(rec.active).toBe(false);
    rec.start('b', at);
    rec.onFragment(frag(4), 1000, (at += 1000));
    await rec.stop();
    expect(sink.clips.map((c) => [c.eventId, c.endedBy, c.durationMs])).toEqual([
      ['a', 'max-length', 3000],
      ['b', 'shutdown', 1000],
    ]);
  });

  it('ends a clip at the memory ceiling when the sink does not read, instead of growing', async () => {
    const sink = new StuckSink();
    const ceiling = 64 * 1024;
    const rec = recorder(sink, { memoryCeilingBytes: ceiling, maxClipMs: 1e9 });
    rec.onInit(INIT);
    let at = 0;
    rec.onFragment(frag(0, 4096), 1000, (at += 1000));
    rec.start('ev', at);
    for (let i = 1; i < 100 && rec.active; i++) rec.onFragment(frag(i, 4096), 1000, (at += 1000));
    expect(rec.active).toBe(false);
    const summary = await sink.clips[0]!.summary;
    expect(summary.endedBy).toBe('memory-ceiling');
    expect(summary.bytes).toBeLessThanOrEqual(ceiling + 4096 + INIT.length);
    // Later fragments only fill the bounded ring.
    for (let i = 0; i < 100; i++) rec.onFragment(frag(i, 4096), 1000, (at += 1000));
    expect(rec.bytesHeld).toBeLessThanOrEqual(ceiling);
    sink.clips[0]!.body.resume();
    await rec.stop();
  });

  it('ends the clip when the stream is lost or a new stream begins', async () => {
    const sink = new CountingSink();
    const rec = recorder(sink);
    rec.onInit(INIT);
    rec.onFragment(frag(0), 1000, 1000);
    rec.start('x', 1000);
    rec.onInit(Buffer.from('another-init'));
    expect(rec.active).toBe(false);
    await rec.stop();
    expect(sink.clips[0]!.endedBy).toBe('stream-lost');
  });

  it('keeps working when the sink fails', async () => {
    const failing: MediaSink = {
      clip: async (c) => {
        await new Promise((r) => setTimeout(r, 5));
        c.body.destroy();
        throw new Error('disk full');
      },
      snapshot: () => Promise.resolve(),
    };
    const rec = recorder(failing);
    rec.onInit(INIT);
    rec.onFragment(frag(0), 1000, 1000);
    rec.start('x', 1000);
    await new Promise((r) => setTimeout(r, 20));
    rec.onFragment(frag(1), 1000, 2000);
    expect(rec.bytesHeld).toBeLessThan(10_000);
    await rec.stop();
    expect(rec.clipsMade).toBe(1);
    expect(Readable.from([]).readable).toBe(true);
  });
});
