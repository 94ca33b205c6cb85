import type { ConsentLedger, ConsentState } from './consent-ledger.js';

/** The ledger's fold, or `unreadable` when the ledger cannot be read: everything it guards is then refused. */
export type ConsentSnapshot = ConsentState | 'unreadable';

/**
 * Reads the current consent, failing closed: a ledger that cannot be read (CAMVEIL_E_CONSENT_UNREADABLE, a
 * locked or closed database) is the fact `unreadable`, never an exception and never a guess (decide.ts).
 */
export function readConsent(ledger: Pick<ConsentLedger, 'currentConsent'>): ConsentSnapshot {
  try {
    return ledger.currentConsent();
  } catch {
    return 'unreadable';
  }
}
