import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameQueue } from '../../src/analysis/frame-queue.js';
import { Backoff } from '../../src/cameras/backoff.js';
import { boundingBox, buildIngestArgs, FRAMES_FD, maskBoxesInPixels, maskFilter, MOTION_GREY_FD, SOURCE_LIST_FD } from '../../src/cameras/ffmpeg-args.js';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { classifyFfmpegFailure } from '../../src/cameras/ffmpeg-errors.js';
import { FramePairing } from '../../src/cameras/frame-pairing.js';
import { rasterisePolygons } from '../../src/analysis/mask.js';
import type { Polygon } from '../../src/config/schema.js';
import { RawFrameReader } from '../../src/cameras/raw-frame-reader.js';
import { SegmentRing } from '../../src/recording/segment-ring.js';

const analysis = { fps: 2, width: 640, height: 360 };

describe('buildIngestArgs', () => {
  it('copies the main stream to fragmented MP4 on stdout and decodes small RGB frames to fd 3', () => {
    const { args, sourceLists } = buildIngestArgs({ main: { url: 'rtsp://u:p@cam/videoMain', kind: 'rtsp' }, analysis, ioTimeoutSeconds: 5, ffmpegMajor: 5 });
    const joined = args.join(' ');
    // The URL (with its password) is not an argument: ffmpeg reads it from a list on fd 4, with the RTSP options.
    expect(joined).toContain(`-threads 1 -f concat -safe 0 -protocol_whitelist pipe,rtsp,rtsps,tcp,tls -i pipe:${SOURCE_LIST_FD}`);
    expect(joined).not.toContain('rtsp://');
    expect(sourceLists).toEqual([
      { fd: SOURCE_LIST_FD, text: "ffconcat version 1.0\nfile 'rtsp://u:p@cam/videoMain'\noption rtsp_transport tcp\noption timeout 5000000\n" },
    ]);
    expect(joined).toContain('-map 0:v:0 -c:v copy -an');
    expect(joined).toContain('+frag_keyframe+empty_moov+default_base_moof pipe:1');
    expect(joined).toContain('fps=2,scale=640:360:force_original_aspect_ratio=decrease,pad=640:360');
    expect(args.at(-1)).toBe(`pipe:${FRAMES_FD}`);
    // Only one input: analysis decodes the main stream.
    expect(args.filter((a) => a === '-i')).toHaveLength(1);
    expect(joined).not.toContain('-c:v libx264');
  });

  it('decodes the sub stream for analysis when there is one; on ffmpeg 4 (no per-entry options) allows RTP over UDP', () => {
    const { args, sourceLists } = buildIngestArgs({
      main: { url: 'rtsp://cam:88/videoMain', kind: 'rtsp' },
      sub: { url: 'rtsp://cam:88/videoSub', kind: 'rtsp' },
      analysis,
      ioTimeoutSeconds: 10,
      ffmpegMajor: 4,
    });
    expect(args.filter((a) => a === '-i')).toHaveLength(2);
    expect(args).not.toContain('-stimeout');
    expect(args).not.toContain('-rtsp_transport');
    expect(args.join(' ')).toContain('-map 1:v:0');
    // Only the analysed input gets the single-thread decoder option; the main stream is only copied.
    expect(args.join(' ')).toContain('-protocol_whitelist pipe,rtsp,rtsps,tcp,tls,udp,rtp -i pipe:4 -threads 1 -f concat');
    expect(args.indexOf('-threads')).toBeGreaterThan(args.indexOf('pipe:4'));
    expect(args.at(args.indexOf('pipe:4') + 2 + 8)).toBe('pipe:5');
    expect(sourceLists.map((l) => l.fd)).toEqual([4, 5]);
    expect(sourceLists[1]!.text).toBe("ffconcat version 1.0\nfile 'rtsp://cam:88/videoSub'\n");
  });

  it('quotes the URL for the ffconcat parser and refuses control characters that could add directives', () => {
    const o = { analysis, ioTimeoutSeconds: 5, ffmpegMajor: 5 };
    const { sourceLists } = buildIngestArgs({ ...o, main: { url: "rtsp://u:it's@cam/x", kind: 'rtsp' } });
    expect(sourceLists[0]!.text).toContain("file 'rtsp://u:it'\\''s@cam/x'\n");
    let caught: unknown;
    try {
      buildIngestArgs({ ...o, main: { url: "rtsp://cam/x'\nfile '/etc/passwd", kind: 'rtsp' } });
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({ code: 'CAMVEIL_E_CAMERA_PROTOCOL' });
  });

  it('paints privacy masks into the recorded stream and re-encodes it only when the camera has masks', () => {
    const { args } = buildIngestArgs({
      main: { url: 'rtsp://cam/videoMain', kind: 'rtsp' },
      sub: { url: 'rtsp://cam/videoSub', kind: 'rtsp' },
      analysis,
      ioTimeoutSeconds: 5,
      ffmpegMajor: 5,
      maskBoxes: [boundingBox([[0.8, 0.75], [1, 0.75], [1, 1], [0.9, 1]])],
    });
    const joined = args.join(' ');
    expect(joined).toContain('drawbox=x=floor(iw*0.8000):y=floor(ih*0.7500):w=ceil(iw*1.0000)-floor(iw*0.8000):h=ceil(ih*1.0000)-floor(ih*0.7500):color=black:t=fill');
    expect(joined).toContain('-c:v libx264');
    expect(joined).not.toContain('-c:v copy');
    // The masked main stream is decoded, so it gets the single-thread decoder option too.
    expect(args.slice(0, args.indexOf('pipe:4'))).toContain('-threads');
  });

  it("with the motion grey output, splits one decode into the RGB frames (fd 3) and the detector's grey images (fd 6)", () => {
    const { args } = buildIngestArgs({
      main: { url: 'rtsp://cam/videoMain', kind: 'rtsp' },
      analysis,
      ioTimeoutSeconds: 5,
      ffmpegMajor: 5,
      maskBoxes: [boundingBox([[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]])],
      motionGrey: { width: 160, height: 90, blurSigma: 1 },
    });
    const graph = args[args.indexOf('-filter_complex') + 1];
    // One fps filter and one letterbox before the split: frame n of both outputs is the same picture.
    expect(graph).toBe(
      '[0:v:0]fps=2,scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,split=2[rgb_in][grey_in];' +
        '[rgb_in]format=rgb24[analysis];' +
        '[grey_in]drawbox=x=64:y=36:w=128:h=72:color=black:t=fill,scale=160:90:flags=area,format=gray,gblur=sigma=1[motion]',
    );
    expect(args.join(' ')).toContain(`-map [analysis] -f rawvideo -pix_fmt rgb24 pipe:${FRAMES_FD} -map [motion] -f rawvideo -pix_fmt gray pipe:${MOTION_GREY_FD}`);
  });

  it("the clip's drawbox (real ffmpeg) paints every pixel whose centre is inside the mask, also off whole pixels", () => {
    const polygon: Polygon = [[0.127, 0.1], [0.327, 0.1], [0.327, 0.9], [0.127, 0.9]];
    const [w, h] = [100, 10];
    const r = spawnSync(findFfmpeg().ffmpeg, [
      '-v', 'error', '-f', 'lavfi', '-i', `color=c=white:size=${w}x${h}:d=0.1`,
      '-vf', `format=gray,${maskFilter([boundingBox(polygon)])}`, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1',
    ]);
    expect(r.status, r.stderr?.toString()).toBe(0);
    const inside = rasterisePolygons([polygon], w, h);
    const unpainted = [...inside.keys()].filter((k) => inside[k] === 1 && r.stdout[k]! > 50);
    expect(unpainted).toEqual([]);
    // Columns 13..32 are inside (12.5 < 12.7; 32.5 < 32.7): truncating drawbox painted 12..31 and missed 32.
    expect(inside[1 * w + 32]).toBe(1);
  });

  it('mask boxes in pixels cover every pixel of their polygon (pixel centres), and no empty box is drawn', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })), { minLength: 3, maxLength: 6 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 64 }),
        (points, width, height) => {
          const polygon: Polygon = points;
          const inside = rasterisePolygons([polygon], width, height);
          const boxes = maskBoxesInPixels([boundingBox(polygon)], width, height);
          for (const b of boxes) expect(b.w > 0 && b.h > 0).toBe(true);
          for (let k = 0; k < inside.length; k++) {
            if (inside[k] === 0) continue;
            const [x, y] = [k % width, Math.floor(k / width)];
            expect(boxes.some((b) => x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h)).toBe(true);
          }
        },
      ),
    );
  });

  it('plays a file in real time, looped', () => {
    const { args, sourceLists } = buildIngestArgs({ main: { url: '/videos/a.mp4', kind: 'file' }, analysis, ioTimeoutSeconds: 10, ffmpegMajor: 5 });
    // A path holds no secret, and the concat demuxer cannot loop a list read from a pipe (it cannot seek).
    expect(args.join(' ')).toContain('-threads 1 -re -stream_loop -1 -i /videos/a.mp4');
    expect(args).not.toContain('concat');
    expect(sourceLists).toEqual([]);
  });
});

describe('classifyFfmpegFailure', () => {
  it.each([
    ['[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized', 'CAMVEIL_E_CAMERA_AUTH'],
    ['rtsp://127.0.0.1:9/x: Connection refused', 'CAMVEIL_E_CAMERA_UNREACHABLE'],
    ['Connection to tcp://10.0.0.9:554 failed: Connection timed out', 'CAMVEIL_E_CAMERA_UNREACHABLE'],
    ['method DESCRIBE failed: 404 Not Found', 'CAMVEIL_E_CAMERA_NOT_VIDEO'],
    ['http://127.0.0.1:80/: Invalid data found when processing input', 'CAMVEIL_E_CAMERA_NOT_VIDEO'],
    ['something else entirely', 'CAMVEIL_E_STREAM_LOST'],
  ])('%s → %s', (stderr, code) => {
    const error = classifyFfmpegFailure(stderr, 'camera front');
    expect(error.code).toBe(code);
    expect(error.message.startsWith('camera front: ')).toBe(true);
  });

  it('names a frozen camera STREAM_LOST: a stream that was flowing, or a whole socket timeout of silence, is never NOT_VIDEO', () => {
    // What ffmpeg 5.1 prints when an RTSP server stopped with SIGSTOP never answers DESCRIBE, and when a stream times out.
    const silent = "[concat @ 0x1] Impossible to open 'rtsp://127.0.0.1:8554/stream'\npipe:4: Invalid data found when processing input";
    expect(classifyFfmpegFailure(silent, 'camera c').code).toBe('CAMVEIL_E_CAMERA_NOT_VIDEO');
    expect(classifyFfmpegFailure(silent, 'camera c', { lastedIoTimeout: true }).code).toBe('CAMVEIL_E_STREAM_LOST');
    expect(classifyFfmpegFailure('pipe:4: Connection timed out', 'camera c', { streamed: true }).code).toBe('CAMVEIL_E_STREAM_LOST');
    // A connect that timed out is an unreachable host however long it took.
    const connect = 'Connection to tcp://10.0.0.9:554 failed: Connection timed out';
    expect(classifyFfmpegFailure(connect, 'camera c', { lastedIoTimeout: true }).code).toBe('CAMVEIL_E_CAMERA_UNREACHABLE');
    // Wrong credentials answer at once: the context never hides them.
    expect(classifyFfmpegFailure('method DESCRIBE failed: 401 Unauthorized', 'camera c', { lastedIoTimeout: true }).code).toBe('CAMVEIL_E_CAMERA_AUTH');
  });

  it('never quotes credentials from stderr', () => {
    const error = classifyFfmpegFailure('rtsp://admin:hunter2@10.0.0.9/x: weird failure', 'camera c');
    expect(error.message).not.toContain('hunter2');
  });
});

describe('RawFrameReader', () => {
  it('cuts any chunking of a byte stream into whole frames, in order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 6 }), fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1 }), (frameSize, frames, cuts) => {
        const stream = Buffer.alloc(frameSize * frames);
        for (let i = 0; i < stream.length; i++) stream[i] = Math.floor(i / frameSize) & 0xff;
        const got: Buffer[] = [];
        const reader = new RawFrameReader(frameSize, (f) => got.push(f));
        let offset = 0;
        for (let i = 0; offset < stream.length; i++) {
          const n = cuts[i % cuts.length]!;
          reader.push(stream.subarray(offset, offset + n));
          offset += n;
        }
        expect(got).toHaveLength(frames);
        got.forEach((f, i) => {
          expect(f.length).toBe(frameSize);
          expect(f.every((b) => b === (i & 0xff))).toBe(true);
        });
      }),
    );
  });
});

describe('FramePairing', () => {
  it('pairs the two outputs by position whatever order their frames arrive in', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 40 }), (order) => {
        const pairs: Array<[number, number]> = [];
        const pairing = new FramePairing(100, (rgb, grey) => pairs.push([rgb[0]!, grey[0]!]));
        let [r, g] = [0, 0];
        for (const rgbNext of order) pairing.push(rgbNext ? 'rgb' : 'grey', Buffer.from([rgbNext ? r++ : g++]));
        expect(pairs).toEqual(Array.from({ length: Math.min(r, g) }, (_, i) => [i, i]));
      }),
    );
  });

  it('refuses to go on when one output runs too far ahead (the two no longer match)', () => {
    const pairing = new FramePairing(2, () => undefined);
    pairing.push('rgb', Buffer.alloc(1));
    pairing.push('rgb', Buffer.alloc(1));
    let caught: unknown;
    try {
      pairing.push('rgb', Buffer.alloc(1));
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({ code: 'CAMVEIL_E_STREAM_LOST' });
  });
});

describe('Backoff', () => {
  it('grows exponentially up to the cap, with jitter in the upper half, and resets', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    b.reset();
    expect(b.next()).toBe(100);
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    expect(low.next()).toBe(50);
  });
});

describe('SegmentRing', () => {
  it('keeps just enough fragments to cover the pre-roll and never exceeds its byte ceiling', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.array(fc.record({ d: fc.integer({ min: 100, max: 3000 }), n: fc.integer({ min: 1, max: 5000 }) }), { minLength: 1, maxLength: 60 }), (preRollMs, frags) => {
        const ring = new SegmentRing({ preRollMs, maxBytes: 20_000 });
        ring.setInit(Buffer.alloc(10));
        let at = 1_000_000;
        for (const f of frags) {
          at += f.d;
          ring.push(Buffer.alloc(f.n), f.d, at);
          const held = ring.fragments();
          expect(held.length).toBeGreaterThan(0);
          const bytes = held.reduce((s, h) => s + h.bytes.length, 0);
          // Over the byte ceiling only with a single (the newest) fragment.
          if (held.length > 1) expect(bytes).toBeLessThanOrEqual(20_000);
          // Without byte pressure, the oldest reaches back to the pre-roll horizon (or is all there is).
          if (bytes + 5000 <= 20_000 && held.length > 1) expect(held[1]!.start).toBeGreaterThan(at - preRollMs);
        }
      }),
    );
  });
});

describe('FrameQueue', () => {
  it('drops the oldest frame when analysis is behind, and counts the drops', async () => {
    const drops: number[] = [];
    const q = new FrameQueue<number>(2, (n) => drops.push(n));
    for (let i = 0; i < 5; i++) q.push(i);
    expect(q.dropped).toBe(3);
    expect(drops).toEqual([1, 2, 3]);
    expect(await q.next()).toBe(3);
    expect(await q.next()).toBe(4);
    const waiting = q.next();
    q.push(9);
    expect(await waiting).toBe(9);
    q.close();
    expect(await q.next()).toBeUndefined();
  });
});
