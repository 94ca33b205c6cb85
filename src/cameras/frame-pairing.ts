import { CamveilError } from '../errors.js';

/**
 * Pairs the two raw outputs an ingest's ffmpeg makes from one decode: RGB analysis frame n with motion
 * grey image n. Both leave the same filter graph (one fps filter, then a split), so ffmpeg emits them
 * one for one and in the same order; they only arrive apart because each has its own pipe, read as its
 * bytes come. Pairing is therefore by position, and one output running ahead of the other by more than a
 * few frames means the two no longer match: {@link FramePairing.push} then throws, and the ingest restarts
 * the stream (a new connection starts both counts afresh).
 */
export class FramePairing {
  readonly #rgb: Buffer[] = [];
  readonly #grey: Buffer[] = [];
  readonly #maxAhead: number;
  readonly #onPair: (rgb: Buffer, grey: Buffer) => void;

  /**
   * `maxAhead`: frames one output may be ahead of the other. ffmpeg cannot write frame n+1's RGB before the
   * hub has read frame n's (a frame is ten times a pipe's buffer), so in practice they are at most one or
   * two apart.
   */
  constructor(maxAhead: number, onPair: (rgb: Buffer, grey: Buffer) => void) {
    this.#maxAhead = maxAhead;
    this.#onPair = onPair;
  }

  /** One whole frame of either output, in the order that output delivered them. */
  push(kind: 'rgb' | 'grey', frame: Buffer): void {
    (kind === 'rgb' ? this.#rgb : this.#grey).push(frame);
    while (this.#rgb.length > 0 && this.#grey.length > 0) this.#onPair(this.#rgb.shift()!, this.#grey.shift()!);
    const ahead = Math.max(this.#rgb.length, this.#grey.length);
    if (ahead > this.#maxAhead) {
      const which = this.#rgb.length > 0 ? 'analysis frames' : 'motion images';
      this.reset();
      throw new CamveilError('CAMVEIL_E_STREAM_LOST', `ffmpeg's ${which} ran ${ahead} ahead of the other output: the two no longer match`);
    }
  }

  /** Drops what waits for its partner (the stream ended). */
  reset(): void {
    this.#rgb.length = 0;
    this.#grey.length = 0;
  }
}
