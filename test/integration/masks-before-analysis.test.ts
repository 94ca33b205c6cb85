import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FaceEngine } from '../../src/analysis/faces/face-engine.js';
import { rasterisePolygons } from '../../src/analysis/mask.js';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';
import { CameraPipeline } from '../../src/cameras/camera-pipeline.js';
import { validateConfig } from '../../src/config/load.js';
import type { Polygon } from '../../src/config/schema.js';
import { EventBus } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { watchingAnalyser } from '../harness/analyser.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { describeWithPeers } from '../harness/peers.js';
import { waitFor } from '../harness/wait.js';
import { DEMO, frameOf } from '../unit/face-fixtures.js';

const ANALYSIS = { fps: 2, width: 640, height: 360 };

/** sample1.jpg (three faces) as a still 1280×720 video, letterboxed like the analysis frames. */
function stillFaceVideo(dir: string): string {
  const file = path.join(dir, 'faces-still.mp4');
  const r = spawnSync(findFfmpeg().ffmpeg, [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-loop', '1', '-framerate', '10', '-t', '6', '-i', path.join(DEMO, 'sample1.jpg'),
    '-vf', 'scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,format=yuv420p',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '10', file,
  ]);
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
  return file;
}

/**
 * Privacy masks must reach every analysis, not only clips and snapshots: a face behind a mask is never
 * seen by the face stage, the bystander check or motion. The masks here are drawn over the faces the
 * detector finds in the photo, so the test shows the model would report them were they not painted out.
 */
describeWithPeers(['ffmpeg'], 'privacy masks are painted in before any analysis', () => {
  let root: string;
  let video: string;
  let masks: Polygon[];

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-masks-'));
    video = stillFaceVideo(root);
    const engine = await FaceEngine.open();
    try {
      const frame = await frameOf(path.join(DEMO, 'sample1.jpg'));
      const faces = await engine.detect({ width: frame.width, height: frame.height, data: new Uint8Array(frame.data), channels: 3 }, { pad: 'never', detector: 'tiny' });
      expect(faces.length).toBeGreaterThanOrEqual(2);
      // Each face's box grown by half its size each way, in normalised coordinates.
      masks = faces.map(({ box }) => {
        const x0 = Math.max(0, (box.x - box.width / 2) / frame.width);
        const y0 = Math.max(0, (box.y - box.height / 2) / frame.height);
        const x1 = Math.min(1, (box.x + box.width * 1.5) / frame.width);
        const y1 = Math.min(1, (box.y + box.height * 1.5) / frame.height);
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]] as Polygon;
      });
    } finally {
      engine.unload();
    }
  }, 60_000);

  afterAll(() => {
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('every frame offered to the face stage and the bystander check is black under the masks', async () => {
    const config = validateConfig(
      { hub: { id: 'mask-hub', region: 'DE' }, dataDir: path.join(root, 'pipeline'), cameras: [{ id: 'porch', source: `file:${video}`, analysis: ANALYSIS, privacyMasks: masks, bystanderBlur: true }] },
      'test config',
      root,
    );
    const camera = config.cameras[0]!;
    const offered: AnalysisFrame[] = [];
    const pipeline = new CameraPipeline({
      camera,
      recording: config.recording,
      sink: new CapturingSink(),
      bus: new EventBus(),
      logger: silentLogger(),
      ffmpeg: findFfmpeg().ffmpeg,
      ffmpegMajor: 5,
      resolveSource: () => Promise.resolve({ main: { url: video, kind: 'file' } }),
      analysers: [watchingAnalyser('masks', ({ frame }) => offered.push(frame))],
      bystanderBoxes: () => Promise.resolve([]),
    });
    pipeline.start();
    try {
      await waitFor('six analysed frames', () => offered.length >= 6, 60_000);
    } finally {
      await pipeline.stop();
    }
    const under = rasterisePolygons(masks, ANALYSIS.width, ANALYSIS.height);
    for (const frame of offered) {
      let lit = 0;
      let litOutside = 0;
      for (let p = 0; p < under.length; p++) {
        const sum = frame.data[p * 3]! + frame.data[p * 3 + 1]! + frame.data[p * 3 + 2]!;
        if (under[p] === 1 && sum > 0) lit += 1;
        if (under[p] === 0 && sum > 0) litOutside += 1;
      }
      expect({ seq: frame.seq, lit }).toEqual({ seq: frame.seq, lit: 0 });
      // The rest of the picture is there: the frame is not simply blank.
      expect(litOutside).toBeGreaterThan(10_000);
    }
  }, 90_000);

  it('the face stage (real models) reports the faces of an unmasked camera and never those behind a mask', async () => {
    const run = async (withMasks: boolean) => {
      const config = validateConfig(
        {
          hub: { id: 'mask-hub', region: 'DE' },
          dataDir: path.join(root, withMasks ? 'masked' : 'open'),
          cameras: [{ id: 'porch', source: `file:${video}`, analysis: ANALYSIS, faceRecognition: true, ...(withMasks ? { privacyMasks: masks } : {}) }],
          // A still scene has no motion: every frame goes to the face stage.
          faceRecognition: { onlyWithMotion: false },
          privacy: { faceCapableOverride: true },
        },
        'test config',
        root,
      );
      const gateway = new Gateway({ config, logger: silentLogger(), sink: new CapturingSink() });
      let faces = 0;
      gateway.bus.on('face.unknown', () => (faces += 1));
      gateway.bus.on('face.known', () => (faces += 1));
      await gateway.start();
      try {
        await gateway.consent.acceptPolicy('2021-10-31', localRequest('test'));
        await gateway.consent.grant('faceRecognition', localRequest('test'));
        await waitFor('six frames analysed by the face stage', () => (gateway.faceStats()?.framesAnalysed ?? 0) >= 6, 90_000);
        return { faces, stats: gateway.faceStats()! };
      } finally {
        await gateway.stop();
      }
    };
    const open = await run(false);
    expect(open.faces).toBeGreaterThanOrEqual(1);
    const masked = await run(true);
    expect(masked.stats.detectCalls).toBeGreaterThanOrEqual(6);
    expect(masked.faces).toBe(0);
  }, 240_000);
});
