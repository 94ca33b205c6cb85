import { generateHybridIdentity, generateX25519Identity } from 'age-encryption';
import { identityFileText, recipientOf } from '../crypto/identities.js';
import type { CommandIO } from './io.js';

/**
 * `camveil keygen [--pq]`: prints a new household identity in `age-keygen`'s layout on stdout (so
 * `camveil keygen > key.txt` gives a file `age -d -i` reads) and `Public key: …` on stderr.
 * `--pq` makes an ML-KEM-768+X25519 hybrid identity (`AGE-SECRET-KEY-PQ-1…` / `age1pq1…`), which the
 * Go age CLI reads from version 1.3.
 *
 * @returns the exit code, 0.
 */
export async function runKeygen(opts: { pq?: boolean }, io: CommandIO, now: () => Date = () => new Date()): Promise<number> {
  const identity = opts.pq === true ? await generateHybridIdentity() : await generateX25519Identity();
  const recipient = await recipientOf(identity);
  for (const line of identityFileText(identity, recipient, now()).trimEnd().split('\n')) io.stdout(line);
  io.stderr(`Public key: ${recipient}`);
  return 0;
}
