import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { encryptStream } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import { silentLogger } from '../log.js';
import { rulesFor } from '../policy/region-rules.js';
import { ObjectStore } from '../store/object-store.js';
import { DeletionRequests } from '../uplink/deletion-requests.js';
import { chooseEndpoint } from '../uplink/endpoint.js';
import { Outbox } from '../uplink/outbox.js';
import { readToken } from '../uplink/uploader.js';
import type { CommandIO } from './io.js';
import { openHubContext, type HubContext } from './hub-context.js';

const ALL = 1_000_000_000;

/**
 * `camveil data export --config F --out FILE`: everything the hub holds about the household — consent
 * records, the event index, the index of stored objects (the objects themselves are already sealed to the
 * household), enrolled people (none until face enrolment lands) and the audit log — as JSON lines in one
 * age file sealed to the household's recipients. Nothing is written in plaintext.
 */
export async function runDataExport(opts: { config: string; out: string }, io: CommandIO): Promise<number> {
  const hub = await openHubContext(opts.config);
  try {
    const recipients = hub.config.household?.recipients;
    if (recipients === undefined) throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `${opts.config}: household.recipients is needed to encrypt the export`);
    const store = ObjectStore.open({ db: hub.db, dataDir: hub.config.dataDir, logger: silentLogger() });
    const lines: object[] = [
      { section: 'export', hub: hub.pseudonymise('hub', hub.config.hub.id), region: hub.config.hub.region, exportedAt: new Date().toISOString(), policyInForce: hub.config.privacy.policyVersion },
      ...readConsent(hub).map((r) => ({ section: 'consent', ...r })),
      ...store.listEvents({ limit: ALL }).map((e) => ({ section: 'event', ...e })),
      ...store.list({ limit: ALL }).map(({ path: _path, ...o }) => ({ section: 'object', ...o })),
      ...hub.audit.entries({ limit: 10_000 }).map((a) => ({ section: 'audit', ...a })),
    ];
    const tmp = `${opts.out}.partial`;
    try {
      const plaintext = Readable.from(lines.map((l) => Buffer.from(`${JSON.stringify(l)}\n`)));
      await pipeline(encryptStream(recipients, plaintext), createWriteStream(tmp, { mode: 0o600 }));
      await rename(tmp, opts.out);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      throw error;
    }
    hub.audit.append('export', { scope: 'household', count: lines.length, recipients: recipients.length });
    io.stdout(`exported ${lines.length} records, sealed to ${recipients.length} household recipient(s): ${opts.out}`);
    return 0;
  } finally {
    hub.close();
  }
}

function readConsent(hub: HubContext): object[] {
  try {
    return hub.ledger.records();
  } catch {
    return [{ unreadable: true }];
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
    const store = ObjectStore.open({ db: hub.db, dataDir: hub.config.dataDir, logger: silentLogger() });
    const outbox = new Outbox(hub.db);
    const deletions = new DeletionRequests(hub.db);
    const uploaded = outbox.uploadedIds();
    const destroyedQueue = outbox.destroyQueued();
    deletions.add(uploaded);
    outbox.forgetAll();
    let objects = 0;
    for (let batch = store.list({ limit: 1000 }); batch.length > 0; batch = store.list({ limit: 1000 })) {
      for (const o of batch) if (store.delete(o.objectId)) objects += 1;
    }
    const events = store.pruneEvents(Number.MAX_SAFE_INTEGER);
    const consentRecords = hub.ledger.eraseAll();
    hub.audit.append('deletion', { scope: 'all', count: objects + events + consentRecords, reason: 'data-subject-request', objectIds: uploaded.slice(0, 256) });
    let cloud = { sent: 0, pending: deletions.pending().length };
    const uplink = hub.config.uplink;
    if (uplink.enabled && uplink.tokenFile !== undefined && cloud.pending > 0) {
      const endpoint = chooseEndpoint(uplink.endpoints, rulesFor(hub.config.hub.region).residencyZone);
      cloud = await deletions.flush({ endpoint, hubPseudonym: hub.pseudonymise('hub', hub.config.hub.id), token: readToken(uplink.tokenFile) });
    }
    const ms = Math.round(performance.now() - started);
    io.stdout(`deleted ${objects} object(s), ${events} event(s), ${consentRecords} consent record(s), ${destroyedQueue.length} queued upload(s) in ${ms} ms`);
    io.stdout(`cloud: ${cloud.sent} deletion request(s) confirmed, ${cloud.pending} pending (retried by the running hub)`);
    return 0;
  } finally {
    hub.close();
  }
}
