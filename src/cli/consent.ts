import type { Command } from 'commander';
import type { ConsentAction } from '../commands/consent.js';
import { CONSENT_NAMES } from '../policy/vocabulary.js';
import { configOption, jsonOption, type CliContext, consoleCommand } from './options.js';

/** `cloudUpload, faceRecognition, crossBorderTransfer or localRecording` */
const CONSENT_NAMES_TEXT = `${CONSENT_NAMES.slice(0, -1).join(', ')} or ${CONSENT_NAMES.at(-1)!}`;
/** `cloudUpload | faceRecognition | crossBorderTransfer | localRecording` */
export const CONSENT_ARGUMENT_TEXT = CONSENT_NAMES.join(' | ');

/** `camveil consent show|grant|withdraw|accept-policy`, at the hub's own console. */
export function registerConsent(program: Command, ctx: CliContext): void {
  const consent = program.command('consent').description("the household's consents, on the hub's own console (the app uses MQTT)");
  const consentAction = (build: (arg: string) => ConsentAction) => async (arg: string, opts: { config: string; json?: boolean }) => {
    const { runConsent } = await import('../commands/consent.js');
    await ctx.run(() => runConsent(build(arg), opts, ctx.io));
  };
  consoleCommand(consent, 'show', 'the consents, the accepted policy version and the mode', { json: true })
    .action(async (opts: { config: string; json?: boolean }) => {
      const { runConsent } = await import('../commands/consent.js');
      await ctx.run(() => runConsent({ kind: 'show' }, opts, ctx.io));
    });
  for (const kind of ['grant', 'withdraw'] as const) {
    consent
      .command(kind)
      .description(`${kind} a consent: ${CONSENT_NAMES_TEXT}`)
      .argument('<consent>', CONSENT_ARGUMENT_TEXT)
      .addOption(configOption())
      .addOption(jsonOption())
      .action(consentAction((consentName) => ({ kind, consent: consentName })));
  }
  consent
    .command('accept-policy')
    .description('accept a privacy-policy version (a material version must be accepted before data flows)')
    .argument('<version>', 'e.g. 2021-10-31')
    .addOption(configOption())
    .addOption(jsonOption())
    .action(consentAction((version) => ({ kind: 'accept-policy', version })));
}
