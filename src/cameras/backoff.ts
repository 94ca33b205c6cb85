/**
 * Exponential backoff with full jitter (the delay is uniform in [base/2, cap] of the exponential step), so
 * a hub whose cameras all dropped at once (a switch rebooting) does not reconnect them in lockstep.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Multiplier per failed attempt. */
  factor?: number;
  /** Source of randomness in [0,1); tests pass a fixed one. */
  random?: () => number;
}

export class Backoff {
  #attempt = 0;
  readonly #o: Required<BackoffOptions>;

  constructor(options: BackoffOptions) {
    this.#o = { factor: 2, random: Math.random, ...options };
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const step = Math.min(this.#o.maxMs, this.#o.initialMs * this.#o.factor ** this.#attempt);
    this.#attempt += 1;
    return Math.round(step / 2 + (step / 2) * this.#o.random());
  }

  /** After a success: start from the initial delay again. */
  reset(): void {
    this.#attempt = 0;
  }

  get attempts(): number {
    return this.#attempt;
  }
}
