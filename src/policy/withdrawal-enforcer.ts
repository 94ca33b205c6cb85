import type { AuditLog } from '../audit/audit-log.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { ModeChange } from './consent-service.js';

/** What the enforcer does to the upload queue; the uplink implements it (absent while uploads are off). */
export interface UploadControl {
  /** Cloud mode: (re)start the uploader and send what is due. */
  resume(): void;
  /** Stop uploading; the queue stays, sealed and unsent. */
  hold(): Promise<void>;
  /** Abort every upload in flight, destroy every queued one, close the cloud client; returns the destroyed ids. */
  cut(reason: string): Promise<string[]>;
  queuedCount(): number;
}

export interface WithdrawalEnforcerOptions {
  bus: EventBus;
  audit: AuditLog;
  logger: Logger;
  /** Undefined while uploads are off. */
  uploads: () => UploadControl | undefined;
}

/**
 * Makes a mode change true, as the ConsentService asks it to (awaited before a grant or withdrawal
 * returns). Entering local-only: every upload in flight is aborted (the gate already refuses new ones,
 * since the ledger changed first), the uploader is stopped, and every queued upload is destroyed — its
 * staging link removed; the local copy stays in the store only under the household's local-recording
 * consent and retention. With `hold` (cloudUpload withdrawn by unsigned requests only) nothing is
 * destroyed: the queue stays, sealed and unsent, until a signed grant sends it or a signed withdrawal or
 * `data/delete` destroys it. The face data a withdrawal concerns follows `consent.changed` (FacesService).
 */
export class WithdrawalEnforcer {
  readonly #o: WithdrawalEnforcerOptions;

  constructor(options: WithdrawalEnforcerOptions) {
    this.#o = options;
  }

  async enforce(change: ModeChange): Promise<void> {
    this.#o.bus.emit('mode.changed', { mode: change.to, reason: change.reason });
    const uploads = this.#o.uploads();
    if (change.to !== 'local-only') {
      uploads?.resume();
      return;
    }
    if (change.hold) {
      await uploads?.hold();
      this.#o.logger.warn({ queued: uploads?.queuedCount() ?? 0, reason: change.reason }, 'local-only by an unsigned withdrawal: uploads stopped, queue held (nothing destroyed)');
      return;
    }
    const destroyed = (await uploads?.cut(change.reason)) ?? [];
    if (destroyed.length > 0) {
      this.#o.audit.append('deletion', { scope: 'object', count: destroyed.length, reason: 'local-only', objectIds: destroyed.slice(0, 256) });
      this.#o.logger.info({ destroyed: destroyed.length, reason: change.reason }, 'local-only: queued uploads destroyed');
    }
  }
}
