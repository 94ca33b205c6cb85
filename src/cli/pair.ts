import type { Command } from 'commander';
import { configOption, jsonOption, type CliContext } from './options.js';

/** `camveil pair`: a pairing code for the phone app. */
export function registerPair(program: Command, ctx: CliContext): void {
  program
    .command('pair')
    .description('show a one-time pairing code (10 minutes, one use) for the phone app')
    .addOption(configOption())
    .addOption(jsonOption())
    .action(async (opts: { config: string; json?: boolean }) => {
      const { runPair } = await import('../commands/pair.js');
      await ctx.run(() => runPair(opts, ctx.io));
    });
}
