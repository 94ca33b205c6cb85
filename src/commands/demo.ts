import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GlobalOptions } from '../cli.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { reportEvents } from '../demo/reporter.js';
import { ensureSampleVideo } from '../demo/sample-video.js';
import { loadOrCreateHubKeys } from '../crypto/hub-keys.js';
import { pseudonym } from '../crypto/pseudonym.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { CountingSink } from '../recording/counting-sink.js';
import type { CommandIO } from './io.js';
import { untilStopRequested } from './service-lifecycle.js';

/** The package's root: the sample video is cached under it so a second run starts at once. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The embedded defaults: one looping sample camera; short rolls so the demo shows events quickly. */
export function demoConfig(sampleVideo: string, dataDir: string): Config {
  return validateConfig(
    {
      hub: { id: 'demo-hub', region: 'DE' },
      dataDir,
      cameras: [
        {
          id: 'sample-cam',
          name: 'Sample camera (looping video)',
          source: `file:${sampleVideo}`,
          analysis: { fps: 2, width: 640, height: 360 },
          motion: { sensitivity: 0.5, minArea: 0.01 },
          // The lower-right corner stands in for a neighbour's window: ignored by analysis, blacked out in snapshots.
          privacyMasks: [[[0.8, 0.75], [1, 0.75], [1, 1], [0.8, 1]]],
        },
      ],
      recording: { preRollSeconds: 2, postRollSeconds: 3, maxClipSeconds: 30 },
    },
    'embedded demo defaults',
    dataDir,
  );
}

/** `camveil demo [--for SECONDS]`: the gateway on embedded defaults, printing what happens in readable lines. */
export async function runDemo(opts: { for?: number; dataDir?: string }, globals: GlobalOptions, io: CommandIO): Promise<number> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'camveil-demo-'));
  io.stdout('camveil demo: a looping sample camera on this machine; nothing leaves loopback.');
  io.stdout('Preparing the sample camera video (first run only: about ten seconds)…');
  const sample = await ensureSampleVideo(path.join(PACKAGE_ROOT, '.cache', 'demo'));
  const config = demoConfig(sample, dataDir);
  // The readable lines go to stdout; the JSON logs only carry warnings and errors unless asked for more.
  const logger = createLogger({ level: globals.logLevel ?? 'warn', pretty: globals.pretty, destination: process.stderr });
  const sink = new CountingSink();
  const keys = await loadOrCreateHubKeys(config.dataDir);
  const gateway = new Gateway({ config, logger, sink, pseudonymise: (kind, value) => pseudonym(keys.pseudonymSecret, kind, value) });
  const stopReporting = reportEvents(gateway.bus, (line) => io.stdout(line));
  io.stdout(`Data directory: ${dataDir}. Press Ctrl-C to stop${opts.for === undefined ? '' : ` (stopping by itself after ${opts.for} s)`}.`);
  await gateway.start();
  await untilStopRequested(opts.for);
  await gateway.stop();
  stopReporting();
  const clips = sink.clips.length;
  io.stdout(`Stopped. ${clips} clip${clips === 1 ? '' : 's'} and ${sink.snapshots.length} snapshot(s) were made, held in memory only, and released.`);
  return 0;
}
