import type { Command } from 'commander';
import { configOption, type CliContext } from './options.js';

/** `camveil run`: the service. */
export function registerRun(program: Command, ctx: CliContext): void {
  program
    .command('run')
    .description('run the gateway with a configuration file')
    .addOption(configOption('configuration file (YAML or JSON)'))
    .action(async (opts: { config: string }) => {
      const { runService } = await import('../commands/run.js');
      await ctx.run(() => runService(opts.config, ctx.globals(), ctx.io));
    });
}
