import type { Command } from 'commander';
import { type CliContext, consoleCommand } from './options.js';

/** `camveil pair`: a pairing code for the phone app. */
export function registerPair(program: Command, ctx: CliContext): void {
  consoleCommand(program, 'pair', 'show a one-time pairing code (10 minutes, one use) for the phone app', { json: true })
    .action(async (opts: { config: string; json?: boolean }) => {
      const { runPair } = await import('../commands/pair.js');
      await ctx.run(() => runPair(opts, ctx.io));
    });
}
