import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { CamveilError } from '../errors.js';
import { deleteAllHouseholdData, openHouseholdExport, recordExport } from '../rights/data-rights.js';
import type { CommandIO } from './io.js';
import { openHubContext } from './hub-context.js';

/**
 * `camveil data export --config F --out FILE`: everything the hub holds about the household — consent
 * records, the event index, the index of stored objects (the objects themselves are already sealed to the
 * household), in cloud mode what the cloud store holds for this hub, and the audit log — as JSON lines in one
 * age file sealed to the household's recipients. Nothing is written in plaintext.
 */
export async function runDataExport(opts: { config: string; out: string }, io: CommandIO): Promise<number> {
  const hub = await openHubContext(opts.config);
  try {
    if (hub.config.household?.recipients === undefined) throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `${opts.config}: household.recipients is needed to encrypt the export`);
    const sealed = await openHouseholdExport({ ...hub, mayAskCloud: () => hub.gate.mayQueueUploads().allowed });
    const tmp = `${opts.out}.partial`;
    try {
      await pipeline(sealed.ciphertext, createWriteStream(tmp, { mode: 0o600 }));
      await rename(tmp, opts.out);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      throw error;
    }
    recordExport(hub.audit, 'household', sealed.records, sealed.recipients);
    io.stdout(`exported ${sealed.records} records, sealed to ${sealed.recipients} household recipient(s): ${opts.out}`);
    return 0;
  } finally {
    hub.close();
  }
}

/**
 * `camveil data delete --config F --yes`: the household's deletion request, done in seconds: every stored
 * object and event, the outbox, the consent records (the hub is then as new: local-only, nothing
 * recorded), and a deletion request to the cloud for every object it received — sent at once, even in
 * local-only mode, and kept pending until the cloud confirms. What remains is the audit trail of the
 * deletion itself (counts and object ids only).
 */
export async function runDataDelete(opts: { config: string; yes?: boolean }, io: CommandIO): Promise<number> {
  if (opts.yes !== true) throw new CamveilError('CAMVEIL_E_USAGE', 'this deletes everything the hub holds about the household: add --yes to confirm');
  const started = performance.now();
  const hub = await openHubContext(opts.config);
  try {
    const deleted = await deleteAllHouseholdData(hub);
    const { objects, events, consentRecords, cloud } = deleted;
    const ms = Math.round(performance.now() - started);
    io.stdout(`deleted ${objects} object(s), ${deleted.people} enrolled person(s), ${events} event(s), ${consentRecords} consent record(s), ${deleted.queuedUploads} queued upload(s) in ${ms} ms`);
    io.stdout(`cloud: ${cloud.sent} deletion request(s) confirmed, ${cloud.pending} pending (retried by the running hub)`);
    return 0;
  } finally {
    hub.close();
  }
}
