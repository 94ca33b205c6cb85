import { z } from 'zod';
import { auditHeadSignatureValid, signedAuditHeadSchema, type SignedAuditHead } from '../audit/audit-anchor.js';
import { CamveilError } from '../errors.js';
import type { PinnedHub } from './hub-message.js';

/** What the app's state file keeps: per hub (`<baseTopic>/<hubId>`), the highest signed audit head it saw. */
export const auditHeadsSchema = z.record(z.string(), signedAuditHeadSchema);

/**
 * The app's memory of each hub's audit log. The hub's full state carries its audit head signed by the hub key
 * (`audit`, see audit-anchor.ts); the app keeps the highest one per hub and refuses a later state whose head is
 * lower, or is another record at the same seq: the hub's log was truncated or rolled back (by someone with
 * write access to its files), even when the anchor file beside the database was rolled back with it.
 *
 * What a head comparison cannot see: a rolled-back hub that has appended past the remembered seq before the
 * app looks again. `camveil audit verify --head SEQ:HASH` with the remembered head (`head`) still sees it.
 */
export class AuditHeadWatch {
  #heads: Record<string, SignedAuditHead>;

  constructor(heads: Record<string, SignedAuditHead> = {}) {
    this.#heads = heads;
  }

  /** The highest head seen of hub `hubKey`; undefined before any. */
  head(hubKey: string): SignedAuditHead | undefined {
    return this.#heads[hubKey];
  }

  /** Every remembered head, for the state file. */
  toJSON(): Record<string, SignedAuditHead> {
    return { ...this.#heads };
  }

  /**
   * Checks the audit head in `state` (a hub's decrypted full state) against the highest seen from that hub.
   * A state without one (a hub from before anchoring) is let through. Returns whether the remembered head
   * moved (the caller saves it).
   *
   * @throws CamveilError `CAMVEIL_E_HUB_UNVERIFIED` when the head is malformed, for another hub or not signed
   * by the pinned hub key; `CAMVEIL_E_AUDIT_ROLLBACK` when it is lower than, or differs at the same seq from,
   * the one seen before (which stays remembered).
   */
  observe(hubKey: string, pinned: PinnedHub, state: unknown): boolean {
    if (state === null || typeof state !== 'object' || !('audit' in state)) return false;
    const parsed = signedAuditHeadSchema.safeParse(state.audit);
    if (!parsed.success) throw new CamveilError('CAMVEIL_E_HUB_UNVERIFIED', "the hub's state carries a malformed audit head", { where: 'audit' });
    const seen = parsed.data;
    if (!auditHeadSignatureValid(seen, pinned.signingKey)) {
      throw new CamveilError('CAMVEIL_E_HUB_UNVERIFIED', "the audit head in the hub's state is not signed by the pinned hub key", { where: 'audit' });
    }
    const before = this.#heads[hubKey];
    if (before !== undefined) {
      const was = `this app saw head ${before.head.seq} (signed ${before.head.at})`;
      if (seen.head.seq < before.head.seq) throw rollback(`the hub's state shows head ${seen.head.seq} but ${was}`, before);
      if (seen.head.seq === before.head.seq && seen.head.hash !== before.head.hash) {
        throw rollback(`the hub's state shows another record ${seen.head.seq} than the one ${was}`, before);
      }
      if (seen.head.seq === before.head.seq) return false;
    }
    this.#heads = { ...this.#heads, [hubKey]: seen };
    return true;
  }
}

function rollback(message: string, kept: SignedAuditHead): CamveilError {
  const check = `camveil audit verify --head ${kept.head.seq}:${kept.head.hash}`;
  return new CamveilError('CAMVEIL_E_AUDIT_ROLLBACK', `audit log rolled back: ${message}; on the hub: ${check}`, { where: 'audit' });
}
