import type { Command } from 'commander';
import type { ReceiverCliOptions } from '../commands/receiver.js';
import { positiveNumber, type CliContext } from './options.js';

/** `camveil receiver [add-hub]`: the reference cloud receiver. */
export function registerReceiver(program: Command, ctx: CliContext): void {
  program
    .command('receiver')
    .description(
      'the reference cloud receiver: stores age-encrypted objects PUT to /v1/objects/<hub>/<id>, refuses anything else; ' +
        "`receiver add-hub <pseudonym> --tokens FILE` adds a hub to its tokens file and prints the hub's new token once",
    )
    // One command with an optional sub-action: a `receiver add-hub` subcommand would have to repeat --tokens
    // and inherit --dir as required.
    .argument('[action]', 'add-hub, or nothing to run the receiver')
    .argument('[pseudonym]', "with add-hub: the hub's pseudonym (hub_…, its state.hub)")
    .option('--dir <dir>', 'where received objects are kept (a directory; or --s3)')
    .option('--s3', 'keep objects in an S3-compatible bucket instead of --dir (needs --s3-region, --s3-bucket, --s3-credentials)')
    .option('--s3-endpoint <url>', 'S3-compatible endpoint (https, or http to loopback); AWS S3 when absent')
    .option('--s3-region <region>', 'the bucket\'s region (us-east-1 for most self-hosted stores)')
    .option('--s3-bucket <bucket>', 'the bucket (must exist)')
    .option('--s3-prefix <prefix>', 'keys are <prefix>/<hub>/<object id>.age')
    .option('--s3-path-style', 'path-style requests (<endpoint>/<bucket>/<key>): most self-hosted stores need it')
    .option('--s3-credentials <file>', 'S3 credentials file (YAML or JSON: accessKeyId, secretAccessKey[, sessionToken]; mode 0600)')
    .option('--presign', 'with --s3: answer POST /v1/uploads/<hub>/<id> with a presigned PUT, so bodies go straight to the bucket')
    .option('--presign-expiry <seconds>', 'with --presign: how long a presigned URL is valid (default 300, at most 3600)', positiveNumber)
    .option('--port <port>', 'TCP port on 127.0.0.1 (default: an ephemeral port)', positiveNumber)
    .option('--tokens <file>', 'per-hub tokens file (JSON, mode 0600); a running receiver re-reads it on SIGHUP')
    .option('--open', 'run without any authentication (a receiver on the hub itself, tests)')
    .option('--token-file <file>', 'removed (one token for every hub): the error says how to migrate')
    .option('--read', 'add-hub: also issue a household read token (list and fetch only)')
    .option('--upload-token-file <file>', "add-hub: bind this existing token (the hub's uplink.tokenFile) instead of issuing one")
    .option('--replace', 'add-hub: replace an existing entry for this hub')
    .action(async (action: string | undefined, hub: string | undefined, opts: ReceiverCliOptions) => {
      const { runReceiverCli } = await import('../commands/receiver.js');
      await ctx.run(() => runReceiverCli(action, hub, opts, ctx.io));
    });

}
