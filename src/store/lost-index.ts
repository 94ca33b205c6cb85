import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CamveilError } from '../errors.js';

/**
 * A hub identity older than this beside no database means the database was lost: every start creates the
 * keys and the database within milliseconds of each other, so only a crash in that window leaves keys alone.
 */
const KEYS_GRACE_MS = 10 * 60_000;

/**
 * Refuses to treat lost state as a fresh hub. When `camveil.db` is missing or empty but the data directory
 * holds what only a hub with a database makes (sealed objects, staged uploads, keys older than a first start),
 * opening would create an empty index: the start-up sweep would then delete every object as "unindexed", and
 * consents and the audit chain would silently start over. Nothing is deleted or created here.
 *
 * @throws CamveilError `CAMVEIL_E_STORE_CORRUPT` naming the file and what was found beside it.
 */
export function refuseLostIndex(dataDir: string, file: string, now: number = Date.now()): void {
  let size: number | undefined;
  try {
    size = statSync(file).size;
  } catch (error) {
    // Anything but "absent" (permissions, a directory) is for the open that follows to report.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return;
  }
  if (size !== undefined && size > 0) return;
  const found: string[] = [];
  const objects = countAgeFiles(join(dataDir, 'objects'));
  if (objects > 0) found.push(`objects/ holds ${objects} .age file(s)`);
  const staged = countAgeFiles(join(dataDir, 'outbox'));
  if (staged > 0) found.push(`outbox/ holds ${staged} staged upload(s)`);
  const identity = join(dataDir, 'keys', 'hub-identity.txt');
  try {
    const created = statSync(identity).mtimeMs;
    if (now - created > KEYS_GRACE_MS) found.push(`keys/hub-identity.txt exists since ${new Date(created).toISOString()}`);
  } catch {
    // no keys: nothing to say
  }
  if (found.length === 0) return;
  throw new CamveilError(
    'CAMVEIL_E_STORE_CORRUPT',
    `${file} is ${size === undefined ? 'missing' : 'empty'} but ${found.join(', ')}: the index, consents and audit log are lost. ` +
      'camveil will not start over existing data as a fresh hub, and deleted nothing. Restore camveil.db from a backup, ' +
      'or move the data directory aside to start afresh.',
    { where: file },
  );
}

function countAgeFiles(dir: string): number {
  try {
    return readdirSync(dir).filter((name) => name.endsWith('.age')).length;
  } catch {
    return 0;
  }
}
