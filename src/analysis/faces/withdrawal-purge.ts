import { LOCAL_OPERATOR, type ConsentLedger } from '../../policy/consent-ledger.js';
import { mayDestroy, withdrawalToEnforce } from '../../policy/withdrawal.js';
import type { ChangeOrigin } from './enrolment-request.js';
import type { EnrolmentStore } from './enrolment.js';

/**
 * Enforces a faceRecognition withdrawal on the templates and sightings — only one with the authority to
 * destroy (policy/withdrawal.ts): signed by a paired key, or made at the hub's console. Then every sighting
 * is deleted (none can be newer: the gate stops face work at the withdrawal) and everyone enrolled before
 * that withdrawal is deleted (audited `unenrolled`). An unsigned withdrawal only stops face work: templates
 * and sightings are held, sealed to the hub, until a signed withdrawal deletes them or a signed grant uses
 * them again — but no longer than the region's template retention (`heldMaxDays`: `maxTemplateRetentionDays`,
 * DEFAULT_HELD_DAYS where the law names none), so held is not kept forever. Derived from the ledger each
 * time, so a withdrawal made while the hub was off (or by the CLI) is enforced at the next check; someone
 * enrolled after the withdrawal is left alone. Returns how many people
 * were deleted. An unreadable ledger deletes nothing (and the gate already refuses all face work).
 */
export function purgeAfterWithdrawal(store: EnrolmentStore, ledger: ConsentLedger, options: { heldMaxDays?: number | null; now?: Date } = {}): number {
  const found = withdrawalToEnforce(ledger, 'faceRecognition', { maxDays: options.heldMaxDays, now: options.now ?? new Date() });
  if (found === undefined) return 0;
  const { withdrawal, records } = found;
  store.sightings.deleteAll();
  const enrolledAt = new Map(records.filter((r) => r.kind === 'enrol' && r.subject !== undefined).map((r) => [r.subject!, r.seq]));
  const stale = store.ids().filter((id) => (enrolledAt.get(id) ?? 0) < withdrawal.seq);
  // Each unenrolment names the withdrawal's actor — the paired key that signed it, or the console — and its
  // request digest, as faces/delete does. Data an unsigned stop held past its retention names that stop's
  // actor (`unsigned-request`), with the reason: the retention deleted it, not the unsigned request.
  const origin: ChangeOrigin = { requestDigest: withdrawal.requestDigest, ...(withdrawal.actor === LOCAL_OPERATOR ? {} : { keyId: withdrawal.actor }) };
  return store.deleteMany(stale, origin, mayDestroy(withdrawal) ? undefined : 'held-retention');
}
