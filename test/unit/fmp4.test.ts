import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { Fmp4Splitter } from '../../src/recording/fmp4.js';
import { motionVideo } from '../harness/video.js';

function fragmented(file: string): Buffer {
  const { ffmpeg } = findFfmpeg();
  const r = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-i', file, '-c', 'copy', '-f', 'mp4',
    '-movflags', '+frag_keyframe+empty_moov+default_base_moof', 'pipe:1'], { maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  return r.stdout;
}

function ffprobeDuration(bytes: Buffer): number {
  const { ffprobe } = findFfmpeg();
  const r = spawnSync(ffprobe, ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames,r_frame_rate', '-of', 'json', 'pipe:0'], { input: bytes });
  const s = (JSON.parse(r.stdout.toString()) as { streams: Array<{ nb_read_frames: string }> }).streams[0];
  return Number(s?.nb_read_frames) / 15;
}

describe('Fmp4Splitter', () => {
  const file = motionVideo({ seconds: 4, motionAt: 1, gop: 15 });
  const stream = fragmented(file);

  it('splits ffmpeg output into one init segment and one fragment per keyframe interval, whatever the chunking', () => {
    for (const chunkSize of [7, 1000, stream.length]) {
      const inits: Buffer[] = [];
      const fragments: Array<{ bytes: Buffer; ms: number }> = [];
      const splitter = new Fmp4Splitter({ onInit: (b) => inits.push(b), onFragment: (bytes, ms) => fragments.push({ bytes, ms }) });
      for (let i = 0; i < stream.length; i += chunkSize) splitter.push(stream.subarray(i, i + chunkSize));
      expect(inits).toHaveLength(1);
      // 4 s at 15 fps with a keyframe every 15 frames: 4 fragments of 1 s each.
      expect(fragments).toHaveLength(4);
      for (const f of fragments) expect(f.ms).toBeCloseTo(1000, 0);
      expect(inits[0]?.toString('latin1', 4, 8)).toBe('ftyp');
    }
  });

  it('init plus any run of fragments is a playable MP4', () => {
    const fragments: Buffer[] = [];
    let init: Buffer = Buffer.alloc(0);
    const splitter = new Fmp4Splitter({ onInit: (b) => (init = b), onFragment: (b) => fragments.push(b) });
    splitter.push(stream);
    const clip = Buffer.concat([init, ...fragments.slice(1, 3)]);
    expect(ffprobeDuration(clip)).toBeCloseTo(2, 1);
  });

  it('rejects a stream that is not MP4 with a protocol error', () => {
    const splitter = new Fmp4Splitter({ onInit: () => undefined, onFragment: () => undefined });
    expect(() => splitter.push(Buffer.from('<html><body>login</body></html>'))).toThrow(/CAMVEIL|MP4 box/);
    try {
      new Fmp4Splitter({ onInit: () => undefined, onFragment: () => undefined }).push(Buffer.from('\x00\x00\x00\x04ftyp'));
      expect.unreachable();
    } catch (e) {
      expect((e as { code?: string }).code).toBe('CAMVEIL_E_CAMERA_PROTOCOL');
    }
  });
});
