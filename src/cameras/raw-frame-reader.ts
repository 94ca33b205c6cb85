/**
 * Cuts a byte stream of packed fixed-size frames (ffmpeg `-f rawvideo`) into whole frames. Chunks from a
 * pipe arrive at arbitrary sizes; each emitted frame is its own buffer so a consumer may keep it.
 */
export class RawFrameReader {
  readonly #frameBytes: number;
  #partial: Buffer | undefined;
  #filled = 0;

  constructor(frameBytes: number, private readonly onFrame: (frame: Buffer) => void) {
    this.#frameBytes = frameBytes;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#partial === undefined) {
        // Fast path: a whole frame inside this chunk, copied out once.
        if (chunk.length - offset >= this.#frameBytes) {
          this.onFrame(Buffer.from(chunk.subarray(offset, offset + this.#frameBytes)));
          offset += this.#frameBytes;
          continue;
        }
        this.#partial = Buffer.allocUnsafe(this.#frameBytes);
        this.#filled = 0;
      }
      const take = Math.min(this.#frameBytes - this.#filled, chunk.length - offset);
      chunk.copy(this.#partial, this.#filled, offset, offset + take);
      this.#filled += take;
      offset += take;
      if (this.#filled === this.#frameBytes) {
        const frame = this.#partial;
        this.#partial = undefined;
        this.onFrame(frame);
      }
    }
  }

  /** Drops a partial frame (the process ended mid-frame). */
  reset(): void {
    this.#partial = undefined;
    this.#filled = 0;
  }
}
