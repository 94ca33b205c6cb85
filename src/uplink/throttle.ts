import { Transform, type TransformCallback } from 'node:stream';

/**
 * A token-bucket byte-rate limiter for a stream: passes bytes on at most `bytesPerSecond` on average,
 * with bursts of at most a tenth of a second's worth (so a short upload cannot jump the cap). Chunks
 * larger than the burst are split. Destroying it cancels the pending wait at once.
 */
export class Throttle extends Transform {
  private readonly rate: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;
  private timer: NodeJS.Timeout | undefined;
  private pendingCallback: TransformCallback | undefined;

  constructor(bytesPerSecond: number, private readonly now: () => number = () => performance.now()) {
    super();
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError('bandwidth cap must be a positive number of bytes/s');
    this.rate = bytesPerSecond;
    this.burst = Math.max(1024, Math.floor(bytesPerSecond / 10));
    this.tokens = this.burst;
    this.last = this.now();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pendingCallback = callback;
    this.sendFrom(chunk, 0);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.pendingCallback = undefined;
    callback(error);
  }

  private sendFrom(chunk: Buffer, offset: number): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    this.last = t;
    while (offset < chunk.length && this.tokens >= 1) {
      const n = Math.min(chunk.length - offset, Math.floor(this.tokens));
      this.push(chunk.subarray(offset, offset + n));
      this.tokens -= n;
      offset += n;
    }
    if (offset >= chunk.length) {
      const callback = this.pendingCallback;
      this.pendingCallback = undefined;
      callback?.();
      return;
    }
    // Wait until a burst's worth (or the rest of the chunk) is available, not for every single byte.
    const want = Math.min(this.burst, chunk.length - offset) - this.tokens;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.destroyed) this.sendFrom(chunk, offset);
    }, Math.max(1, Math.ceil((want * 1000) / this.rate)));
  }
}
