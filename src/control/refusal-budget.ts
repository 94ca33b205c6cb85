import { monotonicMs } from '../clock.js';

/**
 * How many refused requests per second the hub answers. Every reply is sealed (an age encryption per reply,
 * a few milliseconds on a small hub), so without a budget anyone on the broker could make the hub spend a core
 * on answering garbage. Refusals past the budget are still counted (the incident monitor hears each one) but
 * get no reply; accepted requests are never limited. Counted on elapsed time, so a clock step neither opens
 * nor shuts it.
 */
export class RefusalBudget {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number | undefined;
  #suppressed = 0;

  constructor(options: { perSecond?: number; burst?: number; now?: () => number } = {}) {
    this.#perSecond = options.perSecond ?? 10;
    this.#burst = options.burst ?? 30;
    this.#now = options.now ?? monotonicMs;
    this.#tokens = this.#burst;
  }

  /** True when this refusal may be answered; false (and counted) when the budget is spent. */
  take(): boolean {
    const t = this.#now();
    if (this.#last !== undefined) this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#last) * this.#perSecond) / 1000);
    this.#last = t;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.#suppressed += 1;
    return false;
  }

  /** Refusals left unanswered since the hub started. */
  get suppressed(): number {
    return this.#suppressed;
  }
}
