import type { Command } from 'commander';
import { jsonOption, timeoutOption, type CliContext } from './options.js';

/** `camveil probe URL`. */
export function registerProbe(program: Command, ctx: CliContext): void {
  program
    .command('probe')
    .description('inspect a camera: an rtsp:// URL or an ONVIF device service URL (http://host:port/onvif/device_service)')
    .argument('<url>', 'camera URL, without credentials')
    .option('--user <name>', 'user name')
    .option('--password-file <file>', 'file whose first line is the password (or set CAMVEIL_PASSWORD)')
    .addOption(timeoutOption('give up after this many seconds'))
    .addOption(jsonOption())
    .action(async (url: string, opts: { user?: string; passwordFile?: string; json?: boolean; timeout?: number }) => {
      const { runProbe } = await import('../commands/probe.js');
      await ctx.run(() => runProbe(url, opts, ctx.io));
    });
}
