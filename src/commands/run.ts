import { loadConfigFile } from '../config/load.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import type { GlobalOptions } from '../cli.js';
import type { CommandIO } from './io.js';
import { untilStopRequested } from './service-lifecycle.js';

/** `camveil run --config FILE`: the service, until SIGINT/SIGTERM. Bad config exits 2 before anything starts. */
export async function runService(file: string, globals: GlobalOptions, _io: CommandIO): Promise<number> {
  const config = loadConfigFile(file);
  const logger = createLogger({ level: globals.logLevel ?? config.log.level, pretty: globals.pretty });
  const gateway = new Gateway({ config, logger });
  await gateway.start();
  const why = await untilStopRequested();
  logger.info({ why }, 'stopping');
  await gateway.stop();
  return 0;
}
