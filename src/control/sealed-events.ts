import { randomInt } from 'node:crypto';
import type { IncidentReason } from '../events.js';

/** A sealed `security` event as the app sees it. */
export interface SecurityEvent {
  type: 'security';
  reason: IncidentReason;
  detail?: string;
  /** Camera pseudonym, when the incident concerns one camera. */
  camera?: string;
  /** Incidents of this reason left out since the last one sent (rate limit). */
  suppressed?: number;
  at: number;
}

/**
 * At most one `security` event per reason per window (default a minute): a burst of bad signatures must
 * not become a burst of events. Suppressed incidents are counted and reported with the next one sent.
 */
export class IncidentLimiter {
  readonly #windowMs: number;
  readonly #last = new Map<IncidentReason, { at: number; suppressed: number }>();

  constructor(windowMs = 60_000) {
    this.#windowMs = windowMs;
  }

  /**
   * The event to send for this incident, or undefined when it is suppressed. `now` is the event's wall time;
   * the window is measured on `elapsedMs` (src/clock.ts: `monotonicMs()` on the hub), so a clock set back an
   * hour does not silence the household for that hour.
   */
  admit(incident: { reason: IncidentReason; detail?: string; camera?: string }, now: number, elapsedMs: number = now): SecurityEvent | undefined {
    const last = this.#last.get(incident.reason);
    if (last !== undefined && elapsedMs - last.at < this.#windowMs) {
      last.suppressed += 1;
      return undefined;
    }
    this.#last.set(incident.reason, { at: elapsedMs, suppressed: 0 });
    return {
      type: 'security',
      reason: incident.reason,
      ...(incident.detail === undefined ? {} : { detail: incident.detail }),
      ...(incident.camera === undefined ? {} : { camera: incident.camera }),
      ...(last === undefined || last.suppressed === 0 ? {} : { suppressed: last.suppressed }),
      at: now,
    };
  }
}

export interface CoverTrafficOptions {
  /** Dummy events per minute on average. */
  perMinute: number;
  /** Publishes one dummy event (sealed and signed like any other). */
  publish: () => Promise<unknown>;
  onError: (error: unknown) => void;
}

/**
 * Opt-in cover traffic (`mqtt.coverTraffic`): sealed dummy events `{type: 'cover'}` at a steady rate, each
 * gap drawn uniformly from 0.5–1.5 times the mean so the rhythm does not stand out. On the wire they are real
 * events (same topic, same padded size, signed); the app drops them after decrypting. With it on, the timing
 * of events no longer tells the broker when something happened in front of a camera, only that real events
 * hide among at least this many.
 */
export class CoverTraffic {
  readonly #o: CoverTrafficOptions;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(options: CoverTrafficOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (!this.#running) return;
    const mean = 60_000 / this.#o.perMinute;
    const delay = Math.max(1, Math.round(mean * (0.5 + randomInt(1_000_000) / 1_000_000)));
    this.#timer = setTimeout(() => {
      this.#o
        .publish()
        .catch((error: unknown) => this.#o.onError(error))
        .finally(() => this.#schedule());
    }, delay);
    this.#timer.unref();
  }
}
