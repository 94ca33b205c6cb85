import type { AuditLog } from '../audit/audit-log.js';
import { monotonicMs } from '../clock.js';
import type { EventBus } from '../events.js';
import { IncidentLimiter } from './sealed-events.js';

/**
 * Security incidents the household must be told of (Foscam Privacy Notice 2021, §3.4–3.5: notification of
 * security incidents). Some are single facts found where they happen (a tampered model, a broken audit
 * chain, a key file others can read, an unsigned stop); two are bursts that only mean something together:
 * requests refused for bad signatures or unknown keys, and pairing attempts with a wrong proof. One refused
 * request is an app with a stale key or a typo; a burst is someone on the broker trying.
 */

/** A burst: `threshold` failures within `windowMs`. */
export interface BurstRule {
  threshold: number;
  windowMs: number;
}

/**
 * ≥5 refused signatures or unknown keys within a minute: an app retries a refused request at most a few
 * times, so five in a minute is more than one stale phone. Pairing: a code burns after 5 wrong proofs
 * (pairing.ts), so 3 within ten minutes (a code's lifetime) is already someone guessing, not a typo.
 */
export const DEFAULT_BURSTS: Readonly<Record<'bad-signatures' | 'bad-pairing-proofs', BurstRule>> = {
  'bad-signatures': { threshold: 5, windowMs: 60_000 },
  'bad-pairing-proofs': { threshold: 3, windowMs: 600_000 },
};

export type BurstReason = keyof typeof DEFAULT_BURSTS;

/** Which burst a refused request's error code counts towards; undefined for every other refusal. */
export function burstReasonOf(code: string): BurstReason | undefined {
  switch (code) {
    case 'CAMVEIL_E_SIGNATURE_INVALID':
    case 'CAMVEIL_E_UNKNOWN_KEY':
      return 'bad-signatures';
    case 'CAMVEIL_E_PAIRING_FAILED':
      return 'bad-pairing-proofs';
    default:
      return undefined;
  }
}

export interface IncidentMonitorOptions {
  bus: EventBus;
  /** Unix milliseconds; injected so tests control time. */
  now?: () => number;
  rules?: Partial<Record<BurstReason, BurstRule>>;
}

/**
 * Counts failures it is told about and emits the `incident` event once they form a burst. After a burst it
 * stays quiet for one window (failures in it are counted and reported with the next burst), so a flood of
 * forged requests becomes one incident a window, not one per request.
 */
export class IncidentMonitor {
  readonly #bus: EventBus;
  readonly #now: () => number;
  readonly #rules: Record<BurstReason, BurstRule>;
  readonly #recent = new Map<BurstReason, number[]>();
  readonly #quietUntil = new Map<BurstReason, number>();

  constructor(options: IncidentMonitorOptions) {
    this.#bus = options.bus;
    // Windows are intervals: elapsed time, so a step of the wall clock neither extends nor ends one (src/clock.ts).
    this.#now = options.now ?? monotonicMs;
    this.#rules = { ...DEFAULT_BURSTS, ...options.rules };
  }

  /**
   * The control plane tells it the error code of every request it refused. A command that met stored data
   * failing its integrity check (`CAMVEIL_E_STORE_CORRUPT`: a sighting or template that no longer opens with
   * the hub key, a page SQLite cannot read) is an incident by itself, not a burst: only a paired key's signed
   * command reaches stored data, so the broker cannot raise it at will.
   */
  refused(code: string): void {
    if (code === 'CAMVEIL_E_STORE_CORRUPT') {
      this.#bus.emit('incident', { reason: 'store-corrupt', detail: 'a command met stored data that failed its integrity check' });
      return;
    }
    const reason = burstReasonOf(code);
    if (reason !== undefined) this.failure(reason);
  }

  /** One failure of this kind, now. */
  failure(reason: BurstReason): void {
    const now = this.#now();
    const rule = this.#rules[reason];
    const recent = (this.#recent.get(reason) ?? []).filter((t) => now - t < rule.windowMs);
    recent.push(now);
    this.#recent.set(reason, recent);
    if (now < (this.#quietUntil.get(reason) ?? -Infinity) || recent.length < rule.threshold) return;
    this.#quietUntil.set(reason, now + rule.windowMs);
    this.#recent.set(reason, []);
    this.#bus.emit('incident', { reason, detail: `${recent.length} refused within ${Math.round(rule.windowMs / 1000)} s` });
  }
}

/**
 * Records every incident in the audit log (type `incident`: the reason and counts, never the detail text),
 * at most one record per reason per `windowMs` (default a minute); the incidents left out meanwhile are
 * counted in the next record's `suppressed`. Returns the function that stops listening.
 */
export function auditIncidents(bus: EventBus, audit: Pick<AuditLog, 'append'>, options: { now?: () => number; windowMs?: number; cameraPseudonym?: (cameraId: string) => string; onError?: (error: unknown) => void } = {}): () => void {
  const limiter = new IncidentLimiter(options.windowMs);
  const now = options.now ?? monotonicMs;
  return bus.on('incident', (e) => {
    const admitted = limiter.admit({ reason: e.reason }, now());
    if (admitted === undefined) return;
    try {
      audit.append('incident', {
        reason: e.reason,
        ...(admitted.suppressed === undefined ? {} : { suppressed: admitted.suppressed }),
        ...(e.cameraId === undefined || options.cameraPseudonym === undefined ? {} : { camera: options.cameraPseudonym(e.cameraId) }),
      });
    } catch (error) {
      options.onError?.(error);
    }
  });
}
