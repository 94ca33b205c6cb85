import { expect, it } from 'vitest';
import { MotionDetector } from '../../src/analysis/motion.js';
import { boundingBox } from '../../src/cameras/ffmpeg-args.js';
import { ffmpegMajorVersion, findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';
import { CameraIngest } from '../../src/cameras/ingest.js';
import type { Polygon } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const ANALYSIS = { fps: 2, width: 640, height: 360 };
/** Top-left corner, away from the box's path (x 0.1..0.7, y 0.4..0.567). */
const CORNER: Polygon = [[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]];

/** The left edge of the harness's white box in an RGB frame (pixels brighter than 240 above y 230), or -1. */
function boxLeftInRgb(frame: AnalysisFrame): number {
  for (let x = 0; x < frame.width; x++) {
    for (let y = 140; y < 210; y++) {
      const k = (y * frame.width + x) * 3;
      if (frame.data[k]! > 240 && frame.data[k + 1]! > 240 && frame.data[k + 2]! > 240) return x;
    }
  }
  return -1;
}

/** The same in the grey image (160×90: rows 36..51 hold the box), in analysis-frame pixels, or -1. */
function boxLeftInGrey(frame: AnalysisFrame): number {
  const grey = frame.motionGrey!;
  const scale = frame.width / grey.width;
  for (let x = 0; x < grey.width; x++) {
    for (let y = 38; y < 50; y++) if (grey.data[y * grey.width + x]! > 200) return x * scale;
  }
  return -1;
}

describeWithPeers(['ffmpeg'], "the ingest's motion grey images", () => {
  it('come with every analysis frame, show the same moment as it, are black under the mask boxes, and drive the detector', async () => {
    const video = motionVideo({ seconds: 20, motionAt: 2, motionUntil: 18 });
    const { ffmpeg } = findFfmpeg();
    const frames: AnalysisFrame[] = [];
    const ingest = new CameraIngest({
      cameraId: 'grey',
      resolveSource: () => Promise.resolve({ main: { url: video, kind: 'file' } }),
      analysis: ANALYSIS,
      maskBoxes: [boundingBox(CORNER)],
      ffmpeg,
      ffmpegMajor: ffmpegMajorVersion(ffmpeg),
      logger: silentLogger(),
      handlers: { onFrame: (f) => frames.push(f), onStreamEnd: () => undefined, onHealth: () => undefined },
    });
    try {
      ingest.start();
      // Media time, not wall time: ten frames into the motion, however slow the machine.
      await waitFor('frames 4 s into the motion', () => (frames.at(-1)?.mediaMs ?? 0) >= 6000, 90_000);
    } finally {
      await ingest.stop();
    }
    for (const f of frames) expect(f.motionGrey, `frame ${f.seq}`).toMatchObject({ width: 160, height: 90 });
    expect(frames.every((f) => f.motionGrey!.data.length === 160 * 90)).toBe(true);

    // Paired with the right frame: the box is at the same place in both (it moves 18 px between frames, so
    // a grey image one frame off would be 18 px away; one small pixel is 4).
    const moving = frames.filter((f) => boxLeftInRgb(f) > 0);
    expect(moving.length).toBeGreaterThanOrEqual(6);
    for (const f of moving) expect(Math.abs(boxLeftInGrey(f) - boxLeftInRgb(f)), `frame ${f.seq}`).toBeLessThanOrEqual(6);

    // The mask box (x, y < 0.2 → the first 32×18 small pixels) is black in the grey image, not in the RGB
    // frame (the camera pipeline paints the polygons into that one). The blur after the downscale brings
    // light in from outside over the box's last 4 pixels (never the other way: the box is black before
    // it), so the check stops 4 pixels short of its edges.
    for (const f of frames) {
      const grey = f.motionGrey!;
      let lit = 0;
      for (let y = 0; y < 14; y++) for (let x = 0; x < 28; x++) lit += grey.data[y * grey.width + x]! > 0 ? 1 : 0;
      expect({ seq: f.seq, lit }).toEqual({ seq: f.seq, lit: 0 });
    }
    expect(frames[0]!.data.subarray(0, 3 * 100).some((v) => v > 0)).toBe(true);

    // The detector takes them as they are: motion from the box's first frames on, none before.
    const detector = new MotionDetector({ ...ANALYSIS, zones: [], privacyMasks: [CORNER], sensitivity: 0.5, minArea: 0.005 });
    const results = [];
    for (const f of frames) results.push({ mediaMs: f.mediaMs!, ...(await detector.update(f)) });
    expect(results.filter((r) => r.mediaMs < 1900).some((r) => r.motion)).toBe(false);
    const during = results.filter((r) => r.mediaMs >= 2600);
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((r) => r.motion && r.regions.length === 1)).toBe(true);
  }, 120_000);
});
