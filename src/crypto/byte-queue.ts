/**
 * A FIFO of byte chunks that hands out exact-length slices, copying only when a slice spans chunks.
 * Used to re-frame streams whose chunk boundaries are arbitrary (age STREAM chunks, sealed manifests).
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(toBuffer(chunk));
    this.#length += chunk.length;
  }

  /** Removes and returns exactly `n` bytes; `n` must not exceed `length`. */
  take(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`ByteQueue.take(${n}) with ${this.#length} bytes queued`);
    this.#length -= n;
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    return out;
  }

  /** Removes and returns everything queued. */
  takeAll(): Buffer {
    return this.take(this.#length);
  }
}

/** A Buffer view of a Uint8Array without copying. */
export function toBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
