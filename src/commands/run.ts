import { loadConfigFile } from '../config/load.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import type { GlobalOptions } from '../cli/options.js';
import type { CommandIO } from './io.js';
import { surviveStrayErrors, untilStopRequested } from './service-lifecycle.js';

/**
 * `camveil run --config FILE`: the service, until SIGINT/SIGTERM. Bad config exits 2 before anything starts;
 * a hub that cannot start (a corrupt store, unreadable keys) logs `fatal` and exits 1. Once running, no stray
 * error ends it (surviveStrayErrors).
 */
export async function runService(file: string, globals: GlobalOptions, _io: CommandIO): Promise<number> {
  const config = loadConfigFile(file);
  const logger = createLogger({ level: globals.logLevel ?? config.log.level, pretty: globals.pretty });
  const release = surviveStrayErrors(logger);
  try {
    const gateway = new Gateway({ config, logger });
    try {
      await gateway.start();
    } catch (error) {
      logger.fatal({ err: error }, 'the hub could not start');
      await gateway.stop().catch(() => undefined);
      throw error;
    }
    const why = await untilStopRequested();
    logger.info({ why }, 'stopping');
    await gateway.stop();
    return 0;
  } finally {
    release();
  }
}
