import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { openObject } from '../crypto/sealed-object.js';
import { parseIdentityFile } from '../crypto/identities.js';
import { readFile } from 'node:fs/promises';
import { CamveilError } from '../errors.js';
import type { CommandIO } from './io.js';

/**
 * `camveil open --identity FILE OBJECT [--out FILE]`: what the household app does with an object from the
 * cloud or the hub: decrypts it with the household identity, prints the manifest (JSON) and writes the
 * body (MP4, JPEG or JSON) to `--out`, or to stdout when it is not a terminal.
 */
export async function runOpen(objectFile: string, opts: { identity: string; out?: string }, io: CommandIO, stdout: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout): Promise<number> {
  let identityText: string;
  try {
    identityText = await readFile(opts.identity, 'utf8');
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_KEY_UNREADABLE', `${opts.identity}: cannot read the identity file`, { where: opts.identity, cause: error });
  }
  const identities = await parseIdentityFile(identityText, opts.identity);
  if (opts.out === undefined && stdout.isTTY === true) {
    throw new CamveilError('CAMVEIL_E_USAGE', 'the body is binary: give --out FILE or redirect stdout');
  }
  const { manifest, body } = await openObject(identities, createReadStream(objectFile));
  io.stderr(JSON.stringify(manifest, null, 2));
  await pipeline(body, opts.out === undefined ? stdout : createWriteStream(opts.out, { mode: 0o600 }));
  return 0;
}
