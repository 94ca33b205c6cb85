import { loadConfigFile } from '../config/load.js';
import { loadOrCreateHubKeys } from '../crypto/hub-keys.js';
import { pseudonym } from '../crypto/pseudonym.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import type { GlobalOptions } from '../cli.js';
import { CountingSink } from '../recording/counting-sink.js';
import type { CommandIO } from './io.js';
import { untilStopRequested } from './service-lifecycle.js';

/** `camveil run --config FILE`: the service, until SIGINT/SIGTERM. Bad config exits 2 before anything starts. */
export async function runService(file: string, globals: GlobalOptions, _io: CommandIO): Promise<number> {
  const config = loadConfigFile(file);
  const logger = createLogger({ level: globals.logLevel ?? config.log.level, pretty: globals.pretty });
  // No encrypted store is wired yet: clips are counted and released from memory, never written.
  const sink = new CountingSink((clip) =>
    logger.info({ camera: clip.cameraId, event: clip.eventId, durationMs: clip.durationMs, bytes: clip.bytes, endedBy: clip.endedBy }, 'clip ready'),
  );
  const keys = await loadOrCreateHubKeys(config.dataDir);
  const gateway = new Gateway({ config, logger, sink, pseudonymise: (kind, value) => pseudonym(keys.pseudonymSecret, kind, value) });
  await gateway.start();
  const why = await untilStopRequested();
  logger.info({ why }, 'stopping');
  await gateway.stop();
  return 0;
}
