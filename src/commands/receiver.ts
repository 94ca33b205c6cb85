import { createLogger } from '../log.js';
import { startReceiver } from '../receiver/server.js';
import { readToken } from '../uplink/uploader.js';
import type { CommandIO } from './io.js';
import { untilStopRequested } from './service-lifecycle.js';

/**
 * `camveil receiver --dir DIR [--port N] [--token-file F]`: the reference cloud receiver on 127.0.0.1,
 * until SIGINT/SIGTERM. Prints its URL on stdout (never the token).
 *
 * @returns 0 after a requested stop.
 * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` when the token file cannot be read.
 */
export async function runReceiver(opts: { dir: string; port?: number; tokenFile?: string }, io: CommandIO): Promise<number> {
  const token = opts.tokenFile === undefined ? undefined : readToken(opts.tokenFile);
  const logger = createLogger();
  const receiver = await startReceiver({
    dir: opts.dir,
    ...(opts.port === undefined ? {} : { port: opts.port }),
    ...(token === undefined ? {} : { token }),
    logger,
  });
  io.stdout(receiver.url);
  if (token === undefined) io.stderr('receiver: no --token-file, so requests are not authenticated');
  await untilStopRequested();
  await receiver.close();
  return 0;
}
