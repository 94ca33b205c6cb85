import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { validateConfig } from '../src/config/load.js';
import { ensureSampleVideo } from '../src/demo/sample-video.js';
import { Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { localRequest } from '../src/policy/consent-service.js';

/**
 * `npm run bench -- faces-live`: two cameras playing the sample video (faces, pans, cuts) at 2 fps
 * analysis with face recognition allowed and every analysed frame offered to the face stage (not only
 * those with motion: the peak load throughout), for CAMVEIL_BENCH_SECONDS (default 60). Reports how many
 * frames were offered, analysed and dropped by the bounded queue, in all and after the models' warm-up,
 * and the worker's time per frame: whether two cameras are sustained on two cores.
 */
export async function benchFacesLive(): Promise<object> {
  const seconds = Number(process.env.CAMVEIL_BENCH_SECONDS ?? 60);
  const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-faces-live-'));
  const video = await ensureSampleVideo(fileURLToPath(new URL('../.cache/demo/', import.meta.url)));
  const recipient = await identityToRecipient(await generateX25519Identity());
  const config = validateConfig(
    {
      hub: { id: 'bench', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      cameras: ['a', 'b'].map((id) => ({ id, source: `file:${video}`, analysis: { fps: 2, width: 640, height: 360 }, faceRecognition: true })),
      household: { recipients: [recipient] },
      privacy: { faceCapableOverride: true },
      // Every analysed frame of both cameras goes to the face stage, not only those with motion: the peak
      // load (4 frames a second) for the whole run.
      faceRecognition: { onlyWithMotion: false },
    },
    'bench config',
    root,
  );
  const gateway = new Gateway({ config, logger: createLogger({ level: 'warn', destination: process.stderr }) });
  await gateway.start();
  await gateway.consent.acceptPolicy('2021-10-31', localRequest('bench'));
  await gateway.consent.grant('faceRecognition', localRequest('bench'));
  const cpu0 = process.cpuUsage();
  const started = Date.now();
  // The worker loads its models on the first allowed frame (a second or two, while frames queue up):
  // drops during that warm-up are counted apart from those at steady state.
  let warm: { at: number; offered: number; analysed: number; dropped: number } | undefined;
  while (Date.now() - started < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 100));
    const s = gateway.faceStats();
    if (warm === undefined && s?.loaded === true && s.framesAnalysed > 0) warm = { at: Date.now(), offered: s.framesOffered, analysed: s.framesAnalysed, dropped: s.framesDropped };
  }
  const cpu = process.cpuUsage(cpu0);
  const stats = gateway.faceStats();
  const cameras = gateway.state().cameras.map((c) => ({ id: c.cameraId, framesAnalysedForMotion: c.framesAnalysed, motionEvents: c.motion.events }));
  await gateway.stop();
  rmSync(root, { recursive: true, force: true });
  return {
    seconds,
    cameras,
    faces: stats,
    afterWarmUp:
      warm === undefined || stats === undefined
        ? undefined
        : {
            warmUpSeconds: Math.round((warm.at - started) / 100) / 10,
            framesOffered: stats.framesOffered - warm.offered,
            framesAnalysed: stats.framesAnalysed - warm.analysed,
            framesDropped: stats.framesDropped - warm.dropped,
            analysedPerSecond: Math.round(((stats.framesAnalysed - warm.analysed) / ((Date.now() - warm.at) / 1000)) * 100) / 100,
          },
    // The Node process's own CPU (main thread and the face worker), as a share of one core.
    nodeCpuCores: Math.round(((cpu.user + cpu.system) / 1e6 / seconds) * 100) / 100,
  };
}
