import { performance } from 'node:perf_hooks';

/**
 * The hub's two clocks, and which one each kind of time uses (docs/reliability.md, "Clocks", says the same):
 *
 * - **Wall time** (`wallNow`, epoch ms of the system clock, which NTP or a person may step): for what other
 *   machines or people read, and for what must survive a restart — timestamps in records, events, states and
 *   the audit log, the ±5 min window of signed requests and replies (it compares the app's clock with the
 *   hub's), consent and policy records, retention ages (`storage.retentionDays`), pairing-code expiry, and the
 *   upload queue's due times in the database.
 * - **Elapsed time** (`monotonicMs`, never steps): for intervals and time limits inside one process — backoff
 *   and `Retry-After` holds, the uploader's probe, rate limits and quiet windows of incidents, time-outs.
 *
 * A step of the wall clock must not stretch an interval: the upload queue's persisted due times are wall time
 * (they outlive the process), so the uploader asks `ClockSteps` on every scheduling pass and moves them by the
 * step (an upload due in 30 s stays due in 30 s when the clock goes back an hour).
 */
export const wallNow = (): number => Date.now();

/** Milliseconds from an arbitrary origin that only moves forward at the rate of real time. */
export const monotonicMs = (): number => performance.now();

/**
 * Notices steps of the wall clock: each `step()` says by how much the wall clock moved since the previous
 * call beyond what elapsed time explains (0 when under `thresholdMs`, so scheduling jitter and NTP's slewing
 * are not steps). Positive when the clock jumped forward.
 */
export class ClockSteps {
  readonly #wall: () => number;
  readonly #monotonic: () => number;
  readonly #thresholdMs: number;
  #offset: number;

  constructor(options: { wall?: () => number; monotonic?: () => number; thresholdMs?: number } = {}) {
    this.#wall = options.wall ?? wallNow;
    this.#monotonic = options.monotonic ?? monotonicMs;
    this.#thresholdMs = options.thresholdMs ?? 2_000;
    this.#offset = this.#wall() - this.#monotonic();
  }

  step(): number {
    const offset = this.#wall() - this.#monotonic();
    const moved = offset - this.#offset;
    // Always re-based, so slow slewing never adds up to a step.
    this.#offset = offset;
    return Math.abs(moved) < this.#thresholdMs ? 0 : Math.round(moved);
  }
}
