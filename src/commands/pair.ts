import { Pairing } from '../control/pairing.js';
import type { CommandIO } from './io.js';
import { openHubContext } from './hub-context.js';

/**
 * `camveil pair --config FILE`: shows a one-time pairing code (valid 10 minutes, one use) for the phone
 * app, which proves it knows the code when it sends `request/pair` with its public key and age recipient.
 */
export async function runPair(opts: { config: string; json?: boolean }, io: CommandIO): Promise<number> {
  const hub = await openHubContext(opts.config);
  try {
    const { code, expiresAt } = new Pairing(hub.db).createPairingCode(Date.now());
    if (opts.json === true) io.stdout(JSON.stringify({ code, expiresAt: new Date(expiresAt).toISOString() }));
    else io.stdout(`pairing code: ${code} (valid until ${new Date(expiresAt).toTimeString().slice(0, 8)}, one use)`);
    return 0;
  } finally {
    hub.close();
  }
}
