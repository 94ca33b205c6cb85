import type { Command } from 'commander';
import type { CliContext } from './options.js';

const KEYGEN_TEXT = {
  description: 'print a new household age identity to stdout and its recipient to stderr (as age-keygen does)',
  pq: 'a post-quantum hybrid identity (ML-KEM-768 + X25519, age1pq1…)',
};

/** `camveil keygen`; `camveil app keygen` is the same command in the phone app's words (`text`). */
export function registerKeygen(parent: Command, ctx: CliContext, text: { description: string; pq: string } = KEYGEN_TEXT): void {
  parent
    .command('keygen')
    .description(text.description)
    .option('--pq', text.pq)
    .action(async (opts: { pq?: boolean }) => {
      const { runKeygen } = await import('../commands/keygen.js');
      await ctx.run(() => runKeygen(opts, ctx.io));
    });
}
