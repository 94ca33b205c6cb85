import type { Command } from 'commander';
import type { CliContext } from './options.js';

/** `camveil config check`. */
export function registerConfig(program: Command, ctx: CliContext): void {
  const config = program.command('config').description('configuration tools');
  config
    .command('check')
    .description('validate a configuration file: exit 0 when valid, 2 with every problem listed')
    .argument('<file>', 'configuration file (YAML or JSON)')
    .action(async (file: string) => {
      const { runConfigCheck } = await import('../commands/config-check.js');
      await ctx.run(() => runConfigCheck(file, ctx.io));
    });
}
