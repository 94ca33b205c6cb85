import type { Command } from 'commander';
import { CamveilError } from '../errors.js';
import { configOption, type CliContext } from './options.js';

/** `camveil audit verify|export`: the hub's hash-chained audit log. */
export function registerAudit(program: Command, ctx: CliContext): void {
  const audit = program.command('audit').description("the hub's hash-chained audit log");
  audit
    .command('verify')
    .description("check the chain and that it still reaches the hub's signed anchor: exit 0 when intact, 1 naming the first broken record or the rollback")
    .requiredOption('--data-dir <dir>', "the hub's data directory")
    .option('--head <seq:hash>', 'also check the log still holds this head (one kept earlier, e.g. from the app)')
    .action(async (opts: { dataDir: string; head?: string }) => {
      const { runAuditVerify } = await import('../commands/audit.js');
      await ctx.run(() => runAuditVerify(opts, ctx.io));
    });
  audit
    .command('export')
    .description('the whole log as JSON lines, age-encrypted to the household recipients')
    .addOption(configOption('the hub configuration file (for the data directory and the recipients)'))
    .option('-o, --out <file>', 'where the encrypted log goes (default: stdout)')
    .action(async (opts: { config: string; out?: string }) => {
      const { loadConfigFile } = await import('../config/load.js');
      const { runAuditExport } = await import('../commands/audit.js');
      const config = loadConfigFile(opts.config);
      if (config.household === undefined) throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `${opts.config}: household.recipients is needed to encrypt the export`);
      const recipients = config.household.recipients;
      await ctx.run(() => runAuditExport({ dataDir: config.dataDir, recipients, ...(opts.out === undefined ? {} : { out: opts.out }) }, ctx.io));
    });

}
