import { LOCAL_OPERATOR, type ConsentLedger, type ConsentRecord } from './consent-ledger.js';
import { readConsent } from './read-consent.js';
import type { ConsentName } from './vocabulary.js';

/**
 * Unsigned means stop, never destroy (MQTT API version 2). Anyone who can publish on the broker may send a
 * withdrawal without a signature, and it is obeyed at once: it only narrows what flows. But the broker
 * operator must not be able to wipe the household's face library or pending clips, so what a withdrawal
 * *destroys* depends on who made it:
 *
 * - `paired-key`: a request signed by a paired, unrevoked app key (the ledger's actor is its key id);
 * - `console`: the hub's own console (`camveil consent withdraw …`, actor `local-operator`);
 * - `unsigned`: anything else — an unsigned MQTT withdrawal (actor `unsigned-request`).
 *
 * Only the first two destroy (templates, sightings, face albums, queued uploads). An unsigned one stops the
 * flow and holds the data, sealed at rest, until a signed withdrawal or a signed `data/delete` deletes it,
 * or a signed grant makes it usable again. Derived from the ledger each time, so a restart keeps the stop.
 */

/** The ledger actor of an unsigned withdrawal (not a key id: key ids are 16 base32 characters, no dash). */
export const UNSIGNED_ACTOR = 'unsigned-request';

export type ActorKind = 'paired-key' | 'console' | 'unsigned';

/** Paired key ids as key-registry.ts derives them: the first 16 base32 characters of SHA-256(key), lower case. */
const PAIRED_KEY_ID = /^[a-z2-7]{16}$/;

/**
 * Who a ledger actor is. Only the hub writes the ledger, and it writes a key id only for a request whose
 * signature it verified. Anything it cannot place is `unsigned` (fail safe: it then destroys nothing);
 * other actors (written by tests and tools) that are neither the console nor the unsigned marker count as
 * keys only when they have the shape of a key id.
 */
export function actorKindOf(actor: string): ActorKind {
  if (actor === LOCAL_OPERATOR) return 'console';
  if (actor === UNSIGNED_ACTOR) return 'unsigned';
  return PAIRED_KEY_ID.test(actor) ? 'paired-key' : 'unsigned';
}

/** Whether a record was made with authority to destroy data: a paired key's signature or the console. */
export function mayDestroy(record: Pick<ConsentRecord, 'actor'>): boolean {
  return actorKindOf(record.actor) !== 'unsigned';
}

/**
 * Where one consent stands, from the ledger:
 * - `granted`: the last grant/withdraw record is a grant;
 * - `never`: no grant or withdraw record at all (never granted, or the ledger was erased);
 * - `stopped`: withdrawn, but only by unsigned withdrawals since the last grant — the flow stops, the data
 *   is held (`since`: the first of those withdrawals);
 * - `withdrawn`: a signed or console withdrawal since the last grant (`record`: the first such) — the
 *   data may be destroyed.
 */
export type WithdrawalState =
  | { kind: 'granted' }
  | { kind: 'never' }
  | { kind: 'stopped'; since: ConsentRecord }
  | { kind: 'withdrawn'; record: ConsentRecord };

export function withdrawalState(records: readonly ConsentRecord[], consent: ConsentName): WithdrawalState {
  const relevant = records.filter((r) => r.consent === consent && (r.kind === 'grant' || r.kind === 'withdraw'));
  const last = relevant.at(-1);
  if (last === undefined) return { kind: 'never' };
  if (last.kind === 'grant') return { kind: 'granted' };
  const lastGrant = relevant.findLastIndex((r) => r.kind === 'grant');
  const since = relevant.slice(lastGrant + 1);
  const authorised = since.find(mayDestroy);
  if (authorised !== undefined) return { kind: 'withdrawn', record: authorised };
  return { kind: 'stopped', since: since[0]! };
}

/** True when the consent is off because of unsigned withdrawals only: stop the flow, keep the data. */
export function heldByUnsignedStop(records: readonly ConsentRecord[], consent: ConsentName): boolean {
  return withdrawalState(records, consent).kind === 'stopped';
}

/** How long data stopped by an unsigned withdrawal is held where the region's law names no figure. */
export const DEFAULT_HELD_DAYS = 365;

export interface HoldLimit {
  /**
   * The longest the held data may be kept (for face data: the region's `maxTemplateRetentionDays`); 0 means
   * not at all, null or absent DEFAULT_HELD_DAYS. Held is not kept forever.
   */
  maxDays?: number | null;
  now: Date;
}

/**
 * The withdrawal whose effect on the data is deletion, or undefined while there is nothing to delete: a
 * signed or console withdrawal since the last grant, or the first unsigned one once its data has been held
 * longer than `limit` allows.
 */
export function destroyingWithdrawal(records: readonly ConsentRecord[], consent: ConsentName, limit: HoldLimit): ConsentRecord | undefined {
  const state = withdrawalState(records, consent);
  if (state.kind === 'withdrawn') return state.record;
  if (state.kind !== 'stopped') return undefined;
  const heldMs = limit.now.getTime() - Date.parse(state.since.at);
  return heldMs >= (limit.maxDays ?? DEFAULT_HELD_DAYS) * 86_400_000 ? state.since : undefined;
}

/** Whether the consent's data is held now: stopped by unsigned withdrawals only, and within `limit`. */
export function isHeld(records: readonly ConsentRecord[], consent: ConsentName, limit: HoldLimit): boolean {
  return withdrawalState(records, consent).kind === 'stopped' && destroyingWithdrawal(records, consent, limit) === undefined;
}

/**
 * The upload queue held by an unsigned stop is not kept forever either: it follows the store's own
 * retention (`storage.retentionDays`, the household's configured policy for everything the hub keeps), so
 * a held upload queued longer ago than that is deleted by the normal retention sweep, audited. Before then
 * a signed grant sends it, a signed withdrawal or `data/delete` deletes it. Returns the cutoff (epoch ms:
 * held uploads queued before it go), or undefined when the queue is not held (then it is sent, or was
 * destroyed on entering local-only mode).
 */
export function heldUploadCutoff(records: readonly ConsentRecord[], retentionDays: number, now: number): number | undefined {
  if (!heldByUnsignedStop(records, 'cloudUpload')) return undefined;
  return now - retentionDays * 86_400_000;
}

/**
 * The withdrawal of `consent` that face data must now be destroyed under, with the ledger's records (to
 * tell who was enrolled before it); undefined while the consent is granted, the ledger is unreadable (it
 * then destroys nothing), or the only withdrawal is an unsigned stop still within its hold.
 */
export function withdrawalToEnforce(ledger: Pick<ConsentLedger, 'currentConsent' | 'records'>, consent: ConsentName, limit: HoldLimit): { withdrawal: ConsentRecord; records: ConsentRecord[] } | undefined {
  const state = readConsent(ledger);
  if (state === 'unreadable' || state[consent]) return undefined;
  let records: ConsentRecord[];
  try {
    records = ledger.records();
  } catch {
    return undefined;
  }
  const withdrawal = destroyingWithdrawal(records, consent, limit);
  return withdrawal === undefined ? undefined : { withdrawal, records };
}
