import type { ErrorCode } from '../../errors.js';
import type { CamveilError } from '../../errors.js';
import type { EventBus } from '../../events.js';
import type { Logger } from '../../log.js';

/**
 * Whether face recognition can run at all on this hub, as far as the models go. A missing or tampered model
 * file (`CAMVEIL_E_MODEL_INVALID`) or a backend that will not start disables faces: the face stage keeps
 * retrying once a minute, cameras keep recording, the state says why, and the household is told once per
 * outage through an `incident` event (`model-tampered`). A later successful load clears it.
 */
export class FaceModelHealth {
  readonly #bus: EventBus;
  readonly #logger: Logger;
  readonly #subject: string;
  #disabled: { reason: ErrorCode; since: number } | undefined;

  /** `subject` names what the models serve in logs and the incident (default `faces`; the objects analyser says `objects`). */
  constructor(options: { bus: EventBus; logger: Logger; subject?: string }) {
    this.#bus = options.bus;
    this.#logger = options.logger;
    this.#subject = options.subject ?? 'faces';
  }

  /** Why faces are disabled now (an error code), or undefined while the models load (or were never tried). */
  get disabledReason(): ErrorCode | undefined {
    return this.#disabled?.reason;
  }

  /** Told by each face worker how its load ended (FaceWorkerClient's `onLoad`). */
  report(error: CamveilError | undefined): void {
    if (error === undefined) {
      if (this.#disabled !== undefined) this.#logger.info({ was: this.#disabled.reason }, `${this.#subject} enabled again: the models loaded`);
      this.#disabled = undefined;
      return;
    }
    if (error.code !== 'CAMVEIL_E_MODEL_INVALID' && error.code !== 'CAMVEIL_E_BACKEND_UNAVAILABLE') return;
    const first = this.#disabled?.reason !== error.code;
    this.#disabled = { reason: error.code, since: this.#disabled?.since ?? Date.now() };
    if (!first) return;
    this.#logger.error({ code: error.code, err: error }, `${this.#subject} disabled: the ${this.#subject} models cannot be loaded; cameras keep recording`);
    if (error.code === 'CAMVEIL_E_MODEL_INVALID') this.#bus.emit('incident', { reason: 'model-tampered', detail: `${this.#subject} model files differ from models/manifest.json or are missing` });
  }
}
