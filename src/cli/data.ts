import type { Command } from 'commander';
import { type CliContext, consoleCommand } from './options.js';

/** `camveil data export|delete`: the household's data-subject rights. */
export function registerData(program: Command, ctx: CliContext): void {
  const data = program.command('data').description("the household's data-subject rights: export and deletion");
  consoleCommand(data, 'export', 'everything the hub holds about the household, as one age file sealed to the household recipients')
    .requiredOption('-o, --out <file>', 'where the sealed export goes')
    .action(async (opts: { config: string; out: string }) => {
      const { runDataExport } = await import('../commands/data.js');
      await ctx.run(() => runDataExport(opts, ctx.io));
    });
  consoleCommand(data, 'delete', 'delete every object, event and consent record, and ask the cloud to delete what it received')
    .option('--yes', 'confirm')
    .action(async (opts: { config: string; yes?: boolean }) => {
      const { runDataDelete } = await import('../commands/data.js');
      await ctx.run(() => runDataDelete(opts, ctx.io));
    });

}
