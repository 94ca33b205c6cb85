import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { CamveilError } from '../errors.js';
import type { Logger } from '../log.js';

export const AGE_SUFFIX = '.age';
export const TMP_SUFFIX = '.age.tmp';

/** More renamed-but-uncommitted objects than puts can be in flight at once (two per camera, a few albums). */
const MAX_UNINDEXED_AFTER_CRASH = 32;

export interface RecoveryReport {
  tmpRemoved: number;
  /** `.age` files without a row: renamed into place but never committed, so not trusted. */
  unindexedRemoved: number;
  /** Rows whose file was gone; the rows are dropped. */
  missingFiles: number;
}

/**
 * Cleans the objects directory `dir` after a crash: deletes `*.tmp` files, deletes `.age` files without a
 * row (renamed but never committed: not trusted), and drops rows whose file is missing (a warning with the
 * count). Files of ids in `writing` (a `put` in progress in this process) are left alone.
 */
export function recoverObjects(db: Database.Database, dir: string, writing: ReadonlySet<string>, logger: Logger): RecoveryReport {
  const report: RecoveryReport = { tmpRemoved: 0, unindexedRemoved: 0, missingFiles: 0 };
  const indexed = new Set(db.prepare('SELECT object_id FROM store_objects').pluck().all() as string[]);
  const present = new Set<string>();
  const tmp: string[] = [];
  const unindexed: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const { name } = entry;
    if (!entry.isFile()) continue;
    if (name.endsWith('.tmp')) {
      if (!writing.has(name.slice(0, -TMP_SUFFIX.length))) tmp.push(name);
    } else if (name.endsWith(AGE_SUFFIX)) {
      const id = name.slice(0, -AGE_SUFFIX.length);
      if (indexed.has(id)) present.add(id);
      else if (!writing.has(id)) unindexed.push(name);
    }
  }
  // A crash leaves at most the few puts that were between rename and commit. Many more unindexed files
  // mean the index is not the one these objects were written with (emptied, replaced, restored from an
  // older backup): deleting them would destroy the household's recordings to match a lost index.
  if (unindexed.length > MAX_UNINDEXED_AFTER_CRASH) {
    throw new CamveilError(
      'CAMVEIL_E_STORE_CORRUPT',
      `${dir} holds ${unindexed.length} .age files the index does not know (it knows ${indexed.size}): the index looks lost or rolled back. ` +
        'Nothing was deleted; restore camveil.db from a backup, or move the data directory aside to start afresh.',
      { where: dir },
    );
  }
  for (const name of tmp) rmSync(join(dir, name), { force: true });
  report.tmpRemoved = tmp.length;
  for (const name of unindexed) rmSync(join(dir, name), { force: true });
  report.unindexedRemoved = unindexed.length;
  const drop = db.prepare('DELETE FROM store_objects WHERE object_id = ?');
  const missing = [...indexed].filter((id) => !present.has(id));
  db.transaction(() => missing.forEach((id) => drop.run(id)))();
  report.missingFiles = missing.length;
  if (report.missingFiles > 0) logger.warn({ missingFiles: report.missingFiles }, 'store: dropped index rows whose file was missing');
  if (report.tmpRemoved + report.unindexedRemoved > 0) logger.info({ ...report }, 'store: removed files left by an interrupted write');
  return report;
}
