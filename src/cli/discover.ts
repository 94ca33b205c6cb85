import type { Command } from 'commander';
import { jsonOption, timeoutOption, type CliContext } from './options.js';

/** `camveil discover`. */
export function registerDiscover(program: Command, ctx: CliContext): void {
  program
    .command('discover')
    .description('find ONVIF cameras on the local network (WS-Discovery)')
    .addOption(timeoutOption('how long to listen for answers'))
    .addOption(jsonOption())
    .action(async (opts: { timeout?: number; json?: boolean }) => {
      const { runDiscover } = await import('../commands/discover.js');
      await ctx.run(() => runDiscover(opts, ctx.io));
    });
}
