import { Transform, type TransformCallback } from 'node:stream';

/**
 * A token bucket of bytes: refills at `bytesPerSecond`, holds at most a tenth of a second's worth (so a
 * short upload cannot jump the cap). One bucket can be shared by several streams to cap them together.
 */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  #tokens: number;
  #last: number;
  readonly #now: () => number;

  constructor(bytesPerSecond: number, now: () => number = () => performance.now()) {
    this.#now = now;
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError('bandwidth cap must be a positive number of bytes/s');
    this.rate = bytesPerSecond;
    this.burst = Math.max(1024, Math.floor(bytesPerSecond / 10));
    this.#tokens = this.burst;
    this.#last = this.#now();
  }

  /** Takes up to `want` bytes' worth now; returns how many were granted (0 when the bucket is empty). */
  take(want: number): number {
    const t = this.#now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#last) * this.rate) / 1000);
    this.#last = t;
    const n = Math.min(want, Math.floor(this.#tokens));
    if (n <= 0) return 0;
    this.#tokens -= n;
    return n;
  }

  /** Milliseconds until `want` bytes (at most a burst) could be granted. */
  waitMs(want: number): number {
    const missing = Math.min(want, this.burst) - this.#tokens;
    return Math.max(1, Math.ceil((missing * 1000) / this.rate));
  }
}

/**
 * Passes bytes on no faster than its bucket allows; chunks are split as needed. Destroying it cancels
 * the pending wait at once (so an aborted upload does not linger on a timer).
 */
export class Throttle extends Transform {
  #timer: NodeJS.Timeout | undefined;
  #pendingCallback: TransformCallback | undefined;
  readonly #bucket: TokenBucket;

  constructor(bucket: TokenBucket) {
    super();
    this.#bucket = bucket;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#pendingCallback = callback;
    this.#sendFrom(chunk, 0);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pendingCallback = undefined;
    callback(error);
  }

  #sendFrom(chunk: Buffer, offset: number): void {
    for (;;) {
      const n = this.#bucket.take(chunk.length - offset);
      if (n === 0) break;
      this.push(chunk.subarray(offset, offset + n));
      offset += n;
      if (offset >= chunk.length) {
        const callback = this.#pendingCallback;
        this.#pendingCallback = undefined;
        callback?.();
        return;
      }
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.destroyed) this.#sendFrom(chunk, offset);
    }, this.#bucket.waitMs(chunk.length - offset));
  }
}
