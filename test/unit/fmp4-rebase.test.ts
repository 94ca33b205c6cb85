import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { silentLogger } from '../../src/log.js';
import { ClipRecorder } from '../../src/recording/clip-recorder.js';
import { Fmp4Splitter, fragmentDecodeTimes, rebaseFragment } from '../../src/recording/fmp4.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { probeMediaBuffer } from '../harness/media-probe.js';
import { MEDIA_DIR, motionVideo } from '../harness/video.js';

/** The video as the ingest's ffmpeg writes it: fragmented MP4, one fragment per keyframe (1 s here). */
function split(file: string): { init: Buffer; fragments: Array<{ bytes: Buffer; ms: number }> } {
  const { ffmpeg } = findFfmpeg();
  const r = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-i', file, '-c', 'copy', '-f', 'mp4',
    '-movflags', '+frag_keyframe+empty_moov+default_base_moof', 'pipe:1'], { maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  let init: Buffer = Buffer.alloc(0);
  const fragments: Array<{ bytes: Buffer; ms: number }> = [];
  new Fmp4Splitter({ onInit: (b) => (init = b), onFragment: (bytes, ms) => fragments.push({ bytes, ms }) }).push(r.stdout);
  return { init, fragments };
}

/**
 * ffprobe's container start and duration, as a player opening the decrypted clip file reads them. From a
 * file: through a pipe ffprobe cannot seek to the last fragment and guesses the duration from the first.
 * The file is the test's own synthetic video, beside the other generated test media.
 */
function format(bytes: Buffer): { start: number; duration: number } {
  const { ffprobe } = findFfmpeg();
  const file = path.join(MEDIA_DIR, `rebased-clip-${process.pid}.mp4`);
  writeFileSync(file, bytes);
  try {
    const r = spawnSync(ffprobe, ['-v', 'error', '-show_entries', 'format=start_time,duration', '-of', 'json', file]);
    const f = (JSON.parse(r.stdout.toString()) as { format: { start_time: string; duration: string } }).format;
    return { start: Number(f.start_time), duration: Number(f.duration) };
  } finally {
    rmSync(file, { force: true });
  }
}

describe('clips start at time 0', () => {
  const { init, fragments } = split(motionVideo({ seconds: 12, motionAt: 2, motionUntil: 5, width: 640, height: 360 }));

  it('reads each fragment’s decode time and rebases a copy, leaving the original untouched', () => {
    const times = fragments.map((f) => fragmentDecodeTimes(f.bytes));
    const [track] = [...times[0]!.keys()];
    // 1 s fragments: the decode time grows by one second's worth of ticks per fragment.
    const tick = times[1]!.get(track!)! - times[0]!.get(track!)!;
    expect(tick).toBeGreaterThan(0n);
    expect(times[6]!.get(track!)! - times[0]!.get(track!)!).toBe(6n * tick);
    const original = Buffer.from(fragments[6]!.bytes);
    const [moof, rest] = rebaseFragment(fragments[6]!.bytes, times[5]!);
    expect(fragmentDecodeTimes(Buffer.concat([moof, rest])).get(track!)).toBe(tick);
    expect(fragments[6]!.bytes.equals(original)).toBe(true);
    // The media is passed on as a view, not copied.
    expect(rest.buffer).toBe(fragments[6]!.bytes.buffer);
  });

  it('a clip cut 8 s into the stream reads start ≈ 0 and duration ≈ its length in ffprobe', async () => {
    const sink = new CapturingSink();
    const rec = new ClipRecorder({ cameraId: 'cam', preRollMs: 2000, maxClipMs: 4000, memoryCeilingBytes: 64 << 20, sink, logger: silentLogger() });
    rec.onInit(init);
    let at = 1_000_000;
    // Eight seconds stream by; motion at 8 s opens a clip with 2 s of pre-roll; it runs to its 4 s maximum.
    for (const f of fragments.slice(0, 8)) rec.onFragment(f.bytes, f.ms, (at += f.ms));
    expect(rec.start('ev', at)).toBe(true);
    for (const f of fragments.slice(8, 12)) rec.onFragment(f.bytes, f.ms, (at += f.ms));
    await rec.stop();
    const clip = sink.clips[0]!;
    expect(clip.summary.endedBy).toBe('max-length');
    const seconds = clip.summary.durationMs / 1000;
    expect(seconds).toBeCloseTo(4, 0);
    const media = probeMediaBuffer(clip.bytes);
    expect(media.firstPts).toBeCloseTo(0, 1);
    expect(media.lastPts).toBeLessThan(seconds);
    const f = format(clip.bytes);
    expect(f.start).toBeCloseTo(0, 1);
    expect(f.duration).toBeCloseTo(seconds, 0);
  });
});
