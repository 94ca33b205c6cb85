import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ffmpegMajorVersion, findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { FragmentFanOut, type FragmentSubscriber } from '../../src/cameras/fragment-fan-out.js';
import { CameraIngest } from '../../src/cameras/ingest.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { probeMediaBuffer } from '../harness/media-probe.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

type Call = ['init', string] | ['fragment', string] | ['end'];

/** A subscriber that writes down what it is told, in order. */
function recorder(name: string): FragmentSubscriber & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    name,
    calls,
    onInit: (init) => calls.push(['init', init.toString()]),
    onFragment: (bytes) => calls.push(['fragment', bytes.toString()]),
    onStreamEnd: () => calls.push(['end']),
  };
}

/** A logger whose lines are kept, parsed. */
function keptLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  return { lines, logger: createLogger({ level: 'debug', destination: stream }) };
}

const frag = (fan: FragmentFanOut, name: string) => fan.fragment(Buffer.from(name), 1000, 0);

describe('FragmentFanOut', () => {
  it('a subscriber that joins mid-stream gets the current init segment first, then only the fragments after it', () => {
    const fan = new FragmentFanOut('porch', silentLogger());
    const first = recorder('first');
    fan.subscribe(first);
    fan.init(Buffer.from('init-1'));
    frag(fan, 'f1');
    frag(fan, 'f2');
    const late = recorder('late');
    fan.subscribe(late);
    frag(fan, 'f3');
    expect(late.calls).toEqual([['init', 'init-1'], ['fragment', 'f3']]);
    expect(first.calls).toEqual([['init', 'init-1'], ['fragment', 'f1'], ['fragment', 'f2'], ['fragment', 'f3']]);
  });

  it('between streams a joiner gets nothing until the next stream begins; then the new init segment', () => {
    const fan = new FragmentFanOut('porch', silentLogger());
    fan.init(Buffer.from('init-1'));
    frag(fan, 'f1');
    fan.streamEnd();
    const between = recorder('between');
    fan.subscribe(between);
    expect(between.calls).toEqual([]);
    fan.init(Buffer.from('init-2'));
    frag(fan, 'g1');
    expect(between.calls).toEqual([['init', 'init-2'], ['fragment', 'g1']]);
  });

  it('unsubscribing stops delivery at once, also from inside a callback; a second unsubscribe does nothing', () => {
    const fan = new FragmentFanOut('porch', silentLogger());
    const stays = recorder('stays');
    const leaves = recorder('leaves');
    fan.subscribe(stays);
    const leave = fan.subscribe(leaves);
    fan.init(Buffer.from('init'));
    frag(fan, 'f1');
    leave();
    leave();
    frag(fan, 'f2');
    expect(leaves.calls).toEqual([['init', 'init'], ['fragment', 'f1']]);
    expect(fan.size).toBe(1);
    // One that leaves from its own callback gets that call and no further one.
    const once: Call[] = [];
    const leaveOnce = fan.subscribe({ name: 'once', onInit: () => undefined, onFragment: (b) => { once.push(['fragment', b.toString()]); leaveOnce(); } });
    // One that joins from another's callback gets the init segment at once and the fragments after this one.
    const joined = recorder('joined');
    const joiner = fan.subscribe({ name: 'joiner', onInit: () => undefined, onFragment: () => { fan.subscribe(joined); joiner(); } });
    frag(fan, 'f3');
    frag(fan, 'f4');
    expect(once).toEqual([['fragment', 'f3']]);
    expect(joined.calls).toEqual([['init', 'init'], ['fragment', 'f4']]);
    expect(stays.calls.map((c) => c[1])).toEqual(['init', 'f1', 'f2', 'f3', 'f4']);
  });

  it('a subscriber that throws is logged (first failure, then one in a hundred) and hurts neither the others nor the caller', () => {
    const { lines, logger } = keptLogger();
    const fan = new FragmentFanOut('porch', logger);
    const before = recorder('before');
    const after = recorder('after');
    fan.subscribe(before);
    fan.subscribe({ name: 'broken', onInit: () => undefined, onFragment: () => { throw new Error('broken subscriber'); } });
    fan.subscribe(after);
    fan.init(Buffer.from('init'));
    for (let i = 0; i < 250; i++) expect(() => frag(fan, `f${i}`)).not.toThrow();
    expect(before.calls).toHaveLength(251);
    expect(after.calls).toHaveLength(251);
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const failures = lines.filter((l) => l.msg === 'fragment subscriber failed');
      expect(failures.map((l) => l.failures)).toEqual([1, 100, 200]);
      expect(failures[0]).toMatchObject({ camera: 'porch', subscriber: 'broken', err: { message: 'broken subscriber' } });
    });
  });
});

describeWithPeers(['ffmpeg'], 'CameraIngest fans out a real stream', () => {
  it('the recorder-like subscriber gets every fragment; a late joiner gets init then fragments that play; a throwing one harms nothing', async () => {
    // 1 s keyframe interval: one fragment a second.
    const video = motionVideo({ seconds: 20, motionAt: 2, width: 640, height: 360, fps: 10, gop: 10 });
    const { ffmpeg } = findFfmpeg();
    const ends: boolean[] = [];
    const ingest = new CameraIngest({
      cameraId: 'porch',
      resolveSource: () => Promise.resolve({ main: { url: video, kind: 'file' } }),
      analysis: { fps: 1, width: 160, height: 90 },
      ffmpeg,
      ffmpegMajor: ffmpegMajorVersion(ffmpeg),
      logger: silentLogger(),
      handlers: { onFrame: () => undefined, onHealth: () => undefined, onStreamEnd: (stopped) => ends.push(stopped) },
    });
    const all: Buffer[] = [];
    let inits = 0;
    ingest.subscribe({ name: 'broken', onInit: () => { throw new Error('no'); }, onFragment: () => { throw new Error('no'); } });
    ingest.subscribe({ name: 'all', onInit: () => (inits += 1), onFragment: (bytes) => all.push(bytes) });
    const late: Array<{ kind: 'init' | 'fragment'; bytes: Buffer }> = [];
    let leave: (() => void) | undefined;
    try {
      ingest.start();
      await waitFor('three fragments', () => all.length >= 3, 60_000);
      leave = ingest.subscribe({
        name: 'late',
        onInit: (bytes) => late.push({ kind: 'init', bytes }),
        onFragment: (bytes) => late.push({ kind: 'fragment', bytes }),
      });
      await waitFor('three fragments for the late joiner', () => late.length >= 4, 60_000);
      leave();
      const taken = late.length;
      const seen = all.length;
      await waitFor('two more fragments', () => all.length >= seen + 2, 60_000);
      expect(late).toHaveLength(taken);
      expect(ingest.stats().restarts).toBe(0);
      expect(ingest.stats().health).toBe('streaming');
      expect(all).toHaveLength(ingest.stats().fragmentsIn);
    } finally {
      await ingest.stop();
    }
    expect(inits).toBe(1);
    expect(ends).toEqual([true]);
    expect(late[0]!.kind).toBe('init');
    expect(late.slice(1).every((p) => p.kind === 'fragment')).toBe(true);
    // What the late joiner got is a stream a player can open: its init segment, then whole fragments.
    const probed = probeMediaBuffer(Buffer.concat(late.map((p) => p.bytes)));
    expect(probed).toMatchObject({ codec: 'h264', width: 640, height: 360 });
    expect(probed.packets).toBeGreaterThanOrEqual(10 * (late.length - 1) - 1);
  }, 120_000);
});
