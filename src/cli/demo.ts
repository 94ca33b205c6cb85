import type { Command } from 'commander';
import { positiveNumber, type CliContext } from './options.js';

/** `camveil demo`: the gateway on embedded defaults. */
export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description('run the gateway on embedded defaults: a looping sample camera, everything on loopback')
    .option('--for <seconds>', 'stop after this many seconds (default: until Ctrl-C)', positiveNumber)
    .option('--data-dir <dir>', 'where the demo keeps its state (default: a fresh temporary directory)')
    .option('--region <code>', 'the hub region (ISO 3166): the region rules decide about face recognition and residency', 'DE')
    .action(async (opts: { for?: number; dataDir?: string; region?: string }) => {
      const { runDemo } = await import('../commands/demo.js');
      await ctx.run(() => runDemo(opts, ctx.globals(), ctx.io));
    });
}
