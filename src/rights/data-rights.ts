import type { Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import { dropAllAlbums } from '../faces/face-album-rows.js';
import { exportLines, type ExportTrailer } from '../audit/audit-export.js';
import { GENESIS_HASH, type AuditHead, type AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/schema.js';
import { encryptStream } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import { silentLogger } from '../log.js';
import { ObjectStore } from '../store/object-store.js';
import { DeletionRequests } from '../uplink/deletion-requests.js';
import { Outbox } from '../uplink/outbox.js';
import { remoteStoreFor } from '../uplink/remote-store-factory.js';
import { cloudListing } from './cloud-listing.js';
import type { ConsentLedger } from '../policy/consent-ledger.js';

const ALL = 1_000_000_000;

/**
 * What the household's data rights work on: the hub's database and the modules on it. The CLI opens its
 * own (`openHubContext`); the running gateway passes its own, and its `store`, because opening a second
 * ObjectStore runs recovery, which would take the `.tmp` file of a clip being written for debris.
 */
export interface DataRightsDeps {
  db: Database.Database;
  config: Config;
  audit: AuditLog;
  /**
   * The hub's signed trailer for an export of `audit` (AnchoredAudit.exportTrailer): the service and the
   * console pass it, so an export sent over MQTT is checked offline against the hub's key as the CLI's is.
   */
  exportTrailer?: () => (exported: AuditHead) => ExportTrailer;
  ledger: ConsentLedger;
  pseudonymise: (kind: string, value: string) => string;
  /** The store already open on `db`; opened here when absent (only when nothing else writes to it). */
  store?: ObjectStore;
  /**
   * Whether the hub is in cloud mode now (the gate's `mayQueueUploads`): only then does an export ask the
   * cloud store what it holds for this hub; in local-only mode, or when absent, no byte goes to the cloud for
   * an export (deletion requests are the one thing sent in local-only mode, and only by `data delete`).
   */
  mayAskCloud?: () => boolean;
  /** Enrolled people (names and face templates): exported (names, not templates) and deleted with the rest. */
  people?: { deleteAll(origin?: DataRightsRequester): number; list(): Promise<Array<{ personId: string; name: string; minor: boolean; templates: number; enrolledAt: string }>> };
}

/** Who asked, for the audit record: the signing app key and the request digest (MQTT), or nobody (CLI). */
export interface DataRightsRequester {
  keyId?: string;
  requestDigest?: string;
}

/** What `deleteAllHouseholdData` removed, and where the cloud's deletion requests stand. */
export interface DeletionCounts {
  objects: number;
  people: number;
  events: number;
  consentRecords: number;
  queuedUploads: number;
  cloud: { sent: number; pending: number };
}

/** A sealed export: ciphertext for the household's recipients, and how many records it holds. */
export interface SealedExport {
  ciphertext: Readable;
  records: number;
  recipients: number;
}

function storeOf(deps: DataRightsDeps): ObjectStore {
  return deps.store ?? ObjectStore.open({ db: deps.db, dataDir: deps.config.dataDir, logger: silentLogger() });
}

function householdRecipients(config: Config): readonly string[] {
  const recipients = config.household?.recipients;
  if (recipients === undefined || recipients.length === 0) {
    throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', 'household.recipients is needed to encrypt an export', { where: 'household.recipients' });
  }
  return recipients;
}

function readConsent(ledger: ConsentLedger): object[] {
  try {
    return ledger.records();
  } catch {
    return [{ unreadable: true }];
  }
}

/**
 * Everything the hub holds about the household — consent records, enrolled people's names, the event index, the index of stored
 * objects (the objects themselves are already sealed to the household), what the cloud store holds for this
 * hub (ids and sizes, in cloud mode: cloud-listing.ts), and the audit log — as JSON lines
 * in one age stream sealed to the household's recipients. With `exportTrailer`, the first line (`export`)
 * carries under `audit` the hub's signed heads for the audit records that follow (see ExportTrailer). Nothing is written anywhere; the caller records
 * the export with `recordExport` once the ciphertext has reached its destination.
 *
 * @throws CamveilError `CAMVEIL_E_CONFIG_INVALID` without household recipients.
 */
export async function openHouseholdExport(deps: DataRightsDeps, now: Date = new Date()): Promise<SealedExport> {
  const people = (await deps.people?.list()) ?? [];
  const recipients = householdRecipients(deps.config);
  const { config } = deps;
  const cloud = deps.mayAskCloud?.() === true ? await cloudListing(config, deps.pseudonymise('hub', config.hub.id)) : [];
  const store = storeOf(deps);
  // Made before the audit records are read: it reads the anchor they must reach (see exportTrailer).
  const trailer = deps.exportTrailer?.();
  const audit = deps.audit.entries({ limit: 10_000 });
  const last = audit.at(-1);
  // The hub's signed heads for the audit section, as `camveil audit export` ends with them (docs/privacy.md, "Audit log").
  const heads = trailer?.(last === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: last.seq, hash: last.hash });
  const lines: object[] = [
    {
      section: 'export',
      hub: deps.pseudonymise('hub', config.hub.id),
      region: config.hub.region,
      exportedAt: now.toISOString(),
      policyInForce: config.privacy.policyVersion,
      ...(heads === undefined ? {} : { audit: heads }),
    },
    ...readConsent(deps.ledger).map((r) => ({ section: 'consent', ...r })),
    ...people.map((p) => ({ section: 'person', ...p })),
    ...store.listEvents({ limit: ALL }).map((e) => ({ section: 'event', ...e })),
    ...store.list({ limit: ALL }).map(({ path: _path, ...o }) => ({ section: 'object', ...o })),
    ...cloud,
    ...audit.map((a) => ({ section: 'audit', ...a })),
  ];
  const ciphertext = encryptStream(recipients, lines.map((l) => Buffer.from(`${JSON.stringify(l)}\n`)));
  return { ciphertext, records: lines.length, recipients: recipients.length };
}

/** Records a completed export in the audit log (counts only). */
export function recordExport(audit: AuditLog, scope: 'household' | 'audit', records: number, recipients: number, who: DataRightsRequester = {}): void {
  audit.append('export', { scope, count: records, recipients, ...who });
}

/**
 * Collects a ciphertext stream into one buffer of at most `maxBytes`; stops reading (and destroys the
 * stream) as soon as it would exceed it, so an oversized export never sits whole in memory.
 *
 * @throws CamveilError `CAMVEIL_E_REPLY_TOO_LARGE` over the cap.
 */
export async function collectCapped(ciphertext: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ciphertext as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      ciphertext.destroy();
      throw new CamveilError('CAMVEIL_E_REPLY_TOO_LARGE', `the sealed export is larger than ${maxBytes} bytes: use the hub's console (camveil data export / audit export)`, {
        where: 'export',
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/**
 * The household export as one age ciphertext of at most `maxBytes`, recorded in the audit log.
 *
 * @throws CamveilError `CAMVEIL_E_CONFIG_INVALID` without household recipients, `CAMVEIL_E_REPLY_TOO_LARGE`.
 */
export async function exportHouseholdData(deps: DataRightsDeps, options: { maxBytes: number; who?: DataRightsRequester }): Promise<Buffer> {
  const sealed = await openHouseholdExport(deps);
  const bytes = await collectCapped(sealed.ciphertext, options.maxBytes);
  recordExport(deps.audit, 'household', sealed.records, sealed.recipients, options.who);
  return bytes;
}

/**
 * The whole audit log as JSON lines (the format of `camveil audit export`: canonicalJson of each entry,
 * then, with `exportTrailer`, the same signed trailer line), read page by page and sealed to the
 * household's recipients, as one ciphertext of at most `maxBytes`; the export is then recorded in the log
 * (type `export`, scope `audit`).
 *
 * @throws CamveilError `CAMVEIL_E_CONFIG_INVALID` without household recipients, `CAMVEIL_E_REPLY_TOO_LARGE`.
 */
export async function exportAuditLog(deps: Pick<DataRightsDeps, 'audit' | 'config' | 'exportTrailer'>, options: { maxBytes: number; who?: DataRightsRequester }): Promise<Buffer> {
  const recipients = householdRecipients(deps.config);
  const audit = deps.audit;
  const counter = { count: 0 };
  const bytes = await collectCapped(encryptStream(recipients, exportLines(audit, counter, deps.exportTrailer?.())), options.maxBytes);
  recordExport(audit, 'audit', counter.count, recipients.length, options.who);
  return bytes;
}

/**
 * The household's deletion request: the consent records first (the hub is then as new — local-only,
 * nothing recorded — so `stopFlows` can cut uploads before anything else goes), then the upload queue, every
 * stored object (face albums included) and event, the face-album sightings, and a deletion request to the cloud for every object it received — sent at once
 * when uploads are configured, even in local-only mode, and kept pending until the cloud confirms. What
 * remains is the audit trail of the deletion itself (counts and object ids only).
 */
export async function deleteAllHouseholdData(
  deps: DataRightsDeps,
  options: { who?: DataRightsRequester; stopFlows?: () => Promise<void> } = {},
): Promise<DeletionCounts> {
  const { config, db } = deps;
  const consentRecords = deps.ledger.eraseAll();
  await options.stopFlows?.();
  const store = storeOf(deps);
  const outbox = new Outbox(db);
  const deletions = new DeletionRequests(db);
  const uploaded = outbox.uploadedIds();
  const destroyedQueue = outbox.destroyQueued();
  deletions.add(uploaded);
  outbox.forgetAll();
  let objects = 0;
  for (let batch = store.list({ limit: 1000 }); batch.length > 0; batch = store.list({ limit: 1000 })) {
    let deleted = 0;
    for (const o of batch) if (store.delete(o.objectId)) deleted += 1;
    objects += deleted;
    // An object whose row will not go would make this loop spin: stop rather than hang the hub.
    if (deleted === 0) break;
  }
  const events = store.pruneEvents(Number.MAX_SAFE_INTEGER);
  // Each person's unenrolment names the requester (the signing key over MQTT), not the console.
  const people = deps.people?.deleteAll(options.who) ?? 0;
  // Face albums: their objects went with the store above (and the cloud's copies with the deletion
  // requests); the hub-sealed sightings go here, so no person→event record outlives the deletion.
  dropAllAlbums(db);
  deps.audit.append('deletion', {
    scope: 'all',
    count: objects + events + consentRecords + people,
    reason: 'data-subject-request',
    objectIds: uploaded.slice(0, 256),
    ...options.who,
  });
  let cloud = { sent: 0, pending: deletions.pending().length };
  const link = cloud.pending > 0 ? remoteStoreFor(config, deps.pseudonymise('hub', config.hub.id)) : undefined;
  if (link !== undefined) {
    try {
      cloud = await deletions.flush(link.remote);
    } finally {
      link.remote.close?.();
    }
  }
  return { objects, people, events, consentRecords, queuedUploads: destroyedQueue.length, cloud };
}
