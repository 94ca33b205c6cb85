import { expect, it } from 'vitest';
import { ffmpegMajorVersion, findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';
import { CameraIngest } from '../../src/cameras/ingest.js';
import type { CamveilError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { describeWithPeers } from '../harness/peers.js';
import { descendants } from '../harness/proc-scan.js';
import { startRtspServer } from '../harness/rtsp-server.js';
import { waitFor } from '../harness/wait.js';

describeWithPeers(['ffmpeg', 'gst-rtsp-server'], 'a frozen camera (RTSP server stopped with SIGSTOP)', () => {
  it('is reconnecting with CAMVEIL_E_STREAM_LOST while frozen, never failed, streams again after SIGCONT, and leaves no ffmpeg behind', async () => {
    const server = await startRtspServer({ live: { width: 320, height: 240, fps: 10 } });
    const { ffmpeg } = findFfmpeg();
    const health: Array<{ health: string; code?: string }> = [];
    const ingest = new CameraIngest({
      cameraId: 'frozen',
      resolveSource: () => Promise.resolve({ main: { url: server.url, kind: 'rtsp' } }),
      analysis: { fps: 2, width: 160, height: 120 },
      ffmpeg,
      ffmpegMajor: ffmpegMajorVersion(ffmpeg),
      logger: silentLogger(),
      backoff: { initialMs: 300, maxMs: 1000 },
      // Short, so that both the stall timer and ffmpeg's own socket timeout fire while the server is frozen.
      stallTimeoutMs: 6000,
      ioTimeoutSeconds: 2,
      handlers: {
        onFrame: () => undefined,
        onStreamEnd: () => undefined,
        onHealth: (h, e?: CamveilError) => health.push({ health: h, ...(e === undefined ? {} : { code: e.code }) }),
      },
    });
    try {
      ingest.start();
      await waitFor('streaming', () => ingest.stats().health === 'streaming' && ingest.stats().framesIn > 2, 30_000);
      server.pause();
      // The stall is noticed, then at least two retries meet the frozen server (the kernel still accepts
      // their connections; nothing answers): the retries' timeouts must not turn the camera "failed".
      await waitFor('the stall and two frozen retries', () => ingest.stats().restarts >= 3, 60_000);
      const frozen = ingest.stats();
      expect(frozen.health).toBe('reconnecting');
      expect(frozen.error?.code).toBe('CAMVEIL_E_STREAM_LOST');
      expect(health.some((h) => h.health === 'failed')).toBe(false);
      const outage = frozen.outages.at(-1)!;
      expect(outage.to).toBeUndefined();
      expect(outage.firstCode).toBe('CAMVEIL_E_STREAM_LOST');
      expect(outage.lastCode).toBe('CAMVEIL_E_STREAM_LOST');
      const framesBefore = frozen.framesIn;
      server.resume();
      await waitFor('streaming again', () => ingest.stats().health === 'streaming' && ingest.stats().framesIn > framesBefore + 2, 60_000);
      expect(ingest.stats().outages.at(-1)!.to).toBeDefined();
      expect(health.filter((h) => h.health === 'reconnecting').every((h) => h.code === 'CAMVEIL_E_STREAM_LOST')).toBe(true);
    } finally {
      await ingest.stop();
      await server.stop();
    }
    expect(descendants().filter((p) => p.name === 'ffmpeg')).toEqual([]);
  }, 180_000);
});
