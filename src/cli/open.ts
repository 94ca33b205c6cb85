import type { Command } from 'commander';
import type { CliContext } from './options.js';

/** `camveil open OBJECT`: decrypt a sealed object. */
export function registerOpen(program: Command, ctx: CliContext): void {
  program
    .command('open')
    .description("decrypt a sealed object as the household app does: prints its manifest, writes its body")
    .argument('<object>', 'an .age object from the hub or the cloud')
    .requiredOption('-i, --identity <file>', 'the household identity file (as made by camveil keygen or age-keygen)')
    .option('-o, --out <file>', 'where the body goes (default: stdout)')
    .action(async (object: string, opts: { identity: string; out?: string }) => {
      const { runOpen } = await import('../commands/open.js');
      await ctx.run(() => runOpen(object, opts, ctx.io));
    });
}
