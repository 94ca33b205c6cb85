import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import type { AnalysedFrame, FrameAnalyser } from '../../src/analysis/frame-analyser.js';
import { rasterisePolygons } from '../../src/analysis/mask.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';
import { validateConfig } from '../../src/config/load.js';
import type { Polygon } from '../../src/config/schema.js';
import { Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { describeWithPeers } from '../harness/peers.js';
import { startRtspServer } from '../harness/rtsp-server.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

/**
 * A toy analyser, the whole of it: counts each camera's frames and keeps their mean brightness. It needs
 * nothing from camveil but the FrameAnalyser interface, and one line to register (`analysers: [toy]`).
 */
class BrightnessAnalyser implements FrameAnalyser {
  readonly name = 'brightness';
  readonly cameras = new Map<string, { frames: number; meanBrightness: number; recent: AnalysisFrame[] }>();
  #started = false;

  start(): Promise<void> {
    this.#started = true;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#started = false;
    return Promise.resolve();
  }

  offer({ cameraId, frame }: AnalysedFrame): void {
    if (!this.#started) return;
    let sum = 0;
    for (const byte of frame.data) sum += byte;
    const seen = this.cameras.get(cameraId) ?? { frames: 0, meanBrightness: 0, recent: [] };
    seen.frames += 1;
    seen.meanBrightness += (sum / frame.data.length - seen.meanBrightness) / seen.frames;
    // The frame is shared with the pipeline (read-only): keeping a reference is what a slow analyser does.
    seen.recent = [...seen.recent.slice(-9), frame];
    this.cameras.set(cameraId, seen);
  }

  idle(): Promise<void> {
    return Promise.resolve();
  }
}

/** The top-left quarter of the picture; the test video is bright (colour bars) everywhere. */
const MASK: Polygon = [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]];
const ANALYSIS = { fps: 2, width: 320, height: 180 };

describeWithPeers(['ffmpeg', 'gst-rtsp-server'], 'an extra analyser registered with one line', () => {
  it('sees every camera frame, with the privacy mask painted black, through a real gateway on a looping RTSP camera', async () => {
    const server = await startRtspServer({ file: motionVideo({ seconds: 12, motionAt: 3, width: 640, height: 360 }) });
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-toy-'));
    const config = validateConfig(
      { hub: { id: 'toy-hub', region: 'DE' }, dataDir, cameras: [{ id: 'porch', source: server.url, analysis: ANALYSIS, privacyMasks: [MASK] }] },
      'test config',
      dataDir,
    );
    const toy = new BrightnessAnalyser();
    const gateway = new Gateway({ config, logger: silentLogger(), sink: new CapturingSink(), analysers: [toy] });
    let analysed: number | undefined;
    let offered: number | undefined;
    try {
      await gateway.start();
      await waitFor('ten frames seen by the toy analyser', () => (toy.cameras.get('porch')?.frames ?? 0) >= 10, 90_000);
      // Read together (the pipeline counts a frame and offers it in the same turn): every analysed frame reached the toy.
      analysed = gateway.state().cameras.find((c) => c.cameraId === 'porch')?.framesAnalysed;
      offered = toy.cameras.get('porch')?.frames;
    } finally {
      await gateway.stop();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
    expect([...toy.cameras.keys()]).toEqual(['porch']);
    const porch = toy.cameras.get('porch')!;
    expect(offered).toBe(analysed);
    expect(porch.meanBrightness).toBeGreaterThan(20);
    const under = rasterisePolygons([MASK], ANALYSIS.width, ANALYSIS.height);
    expect(porch.recent).toHaveLength(10);
    for (const frame of porch.recent) {
      let litUnder = 0;
      let litOutside = 0;
      for (let p = 0; p < under.length; p++) {
        const lit = frame.data[p * 3]! + frame.data[p * 3 + 1]! + frame.data[p * 3 + 2]! > 0;
        if (lit && under[p] === 1) litUnder += 1;
        if (lit && under[p] === 0) litOutside += 1;
      }
      expect({ seq: frame.seq, litUnder }).toEqual({ seq: frame.seq, litUnder: 0 });
      // The rest of the picture is there (three quarters of 320x180, colour bars).
      expect(litOutside).toBeGreaterThan(30_000);
    }
  }, 180_000);
});
