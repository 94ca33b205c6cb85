import { CamveilError } from '../errors.js';
import { createLogger } from '../log.js';
import { checkStorageOptions, openS3Storage, type StorageCliOptions } from '../receiver/s3-options.js';
import { startReceiver } from '../receiver/server.js';
import { addHubEntry, hashToken, HUB_PSEUDONYM_PATTERN, newToken, readTokensFile } from '../receiver/tokens.js';
import { readToken } from '../uplink/http-receiver-store.js';
import type { CommandIO } from './io.js';
import { untilStopRequested } from './service-lifecycle.js';

/** Every option of `camveil receiver` and `camveil receiver add-hub` (one command, see src/cli.ts). */
export interface ReceiverCliOptions extends StorageCliOptions {
  port?: number;
  tokens?: string;
  open?: boolean;
  tokenFile?: string;
  read?: boolean;
  uploadTokenFile?: string;
  replace?: boolean;
}

/**
 * `camveil receiver [add-hub <pseudonym>] …`: runs the receiver, or adds a hub to its tokens file.
 *
 * @throws CamveilError `CAMVEIL_E_USAGE` for an unknown action, a missing --dir or --tokens, or options
 * that belong to the other form.
 */
export async function runReceiverCli(action: string | undefined, hub: string | undefined, opts: ReceiverCliOptions, io: CommandIO): Promise<number> {
  const addHubOnly = (['read', 'uploadTokenFile', 'replace'] as const).filter((k) => opts[k] !== undefined);
  const runOnly = (
    ['dir', 'port', 'open', 'tokenFile', 's3', 's3Endpoint', 's3Region', 's3Bucket', 's3Prefix', 's3PathStyle', 's3Credentials', 'presign', 'presignExpiry'] as const
  ).filter((k) => opts[k] !== undefined);
  if (action === 'add-hub') {
    if (hub === undefined) throw new CamveilError('CAMVEIL_E_USAGE', 'receiver add-hub needs the hub pseudonym');
    if (opts.tokens === undefined) throw new CamveilError('CAMVEIL_E_USAGE', 'receiver add-hub needs --tokens FILE');
    if (runOnly.length > 0) throw new CamveilError('CAMVEIL_E_USAGE', `receiver add-hub does not take ${runOnly.map(flag).join(', ')}`);
    return runReceiverAddHub(hub, { ...opts, tokens: opts.tokens }, io);
  }
  if (action !== undefined) throw new CamveilError('CAMVEIL_E_USAGE', `unknown receiver action "${action}" (known: add-hub)`);
  if (addHubOnly.length > 0) throw new CamveilError('CAMVEIL_E_USAGE', `${addHubOnly.map(flag).join(', ')}: only with receiver add-hub`);
  return runReceiver(opts, io);
}

function flag(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * `camveil receiver (--dir DIR | --s3 …) --tokens FILE [--port N] [--presign]`: the reference cloud receiver
 * on 127.0.0.1, until SIGINT/SIGTERM; SIGHUP re-reads the tokens file (a bad file is logged and the old
 * tokens stay). Prints its URL on stdout. `--open` runs it with no authentication at all (a receiver on the
 * hub itself, tests). With `--s3` objects go to a bucket (docs/receiver.md), checked at start.
 *
 * @returns 0 after a requested stop.
 * @throws CamveilError `CAMVEIL_E_USAGE` for `--token-file` (one token for every hub, removed), neither
 * `--tokens` nor `--open`, or storage options that do not fit (checkStorageOptions), or a bucket that does
 * not exist; the errors of readTokensFile (exit 2) for a bad tokens file, of openS3Storage for the bucket.
 */
export async function runReceiver(opts: StorageCliOptions & { port?: number; tokens?: string; open?: boolean; tokenFile?: string }, io: CommandIO): Promise<number> {
  if (opts.tokenFile !== undefined) {
    throw new CamveilError(
      'CAMVEIL_E_USAGE',
      '--token-file (one token for every hub) was removed: bind the token to its hub with ' +
        '`camveil receiver add-hub <hub pseudonym> --tokens FILE --upload-token-file <that file>`, then run with --tokens FILE',
    );
  }
  if (opts.tokens === undefined && opts.open !== true) {
    throw new CamveilError('CAMVEIL_E_USAGE', 'give --tokens FILE (per-hub tokens, see `camveil receiver add-hub`) or --open (no authentication)');
  }
  const { presignExpirySeconds } = checkStorageOptions(opts);
  const file = opts.tokens;
  const tokens = file === undefined ? undefined : await readTokensFile(file);
  const logger = createLogger();
  const storage = opts.s3 === true ? await openS3Storage(opts) : undefined;
  const receiver = await startReceiver({
    ...(storage === undefined ? { dir: opts.dir ?? '' } : { storage }),
    ...(presignExpirySeconds === undefined ? {} : { presignExpirySeconds }),
    ...(opts.port === undefined ? {} : { port: opts.port }),
    ...(tokens === undefined ? {} : { tokens }),
    logger,
  });
  const reload = () => {
    if (file === undefined) return;
    readTokensFile(file).then(
      (next) => {
        receiver.setTokens(next);
        logger.info({ hubs: next.size }, 'receiver tokens reloaded');
      },
      (error: unknown) => logger.error({ err: error }, 'receiver tokens file not reloaded; the previous tokens stay in force'),
    );
  };
  process.on('SIGHUP', reload);
  io.stdout(receiver.url);
  if (tokens === undefined) io.stderr('receiver: --open, so requests are not authenticated');
  try {
    await untilStopRequested();
  } finally {
    process.off('SIGHUP', reload);
    await receiver.close();
  }
  return 0;
}

/**
 * `camveil receiver add-hub <pseudonym> --tokens FILE [--read] [--upload-token-file F] [--replace]`:
 * adds a hub's entry to the tokens file (created 0600 if missing), storing only digests. A fresh upload
 * token is printed once as `upload <token>` (unless `--upload-token-file` binds a hub's existing token,
 * the migration from the single shared token); with `--read`, a household read token as `read <token>`.
 *
 * @throws CamveilError `CAMVEIL_E_USAGE` for a malformed pseudonym or an existing entry without
 * `--replace`; the errors of readTokensFile for an existing file that is not valid.
 */
export async function runReceiverAddHub(
  hub: string,
  opts: { tokens: string; read?: boolean; uploadTokenFile?: string; replace?: boolean },
  io: CommandIO,
): Promise<number> {
  if (!HUB_PSEUDONYM_PATTERN.test(hub)) {
    throw new CamveilError('CAMVEIL_E_USAGE', `"${hub}" is not a hub pseudonym (hub_ and 16 base32 characters; the hub's state.hub)`);
  }
  const upload = opts.uploadTokenFile === undefined ? newToken() : readToken(opts.uploadTokenFile);
  const read = opts.read === true ? newToken() : undefined;
  await addHubEntry(opts.tokens, hub, { upload: hashToken(upload), ...(read === undefined ? {} : { read: hashToken(read) }) }, opts.replace === true);
  if (opts.uploadTokenFile === undefined) io.stdout(`upload ${upload}`);
  if (read !== undefined) io.stdout(`read ${read}`);
  io.stderr(`receiver: ${hub} added to ${opts.tokens}; the tokens are shown once and not kept (send SIGHUP to a running receiver)`);
  return 0;
}
