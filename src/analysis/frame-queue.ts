/**
 * A bounded hand-off between ingest and analysis. When analysis falls behind, the oldest waiting frame
 * is dropped and counted: motion detection wants the newest picture, and memory must not grow.
 */
export class FrameQueue<T> {
  readonly #items: T[] = [];
  readonly #capacity: number;
  #waiter: ((item: T | undefined) => void) | undefined;
  #closed = false;
  #dropped = 0;

  constructor(capacity: number, private readonly onDrop?: (totalDropped: number, dropped: T) => void) {
    if (capacity < 1) throw new RangeError('capacity must be at least 1');
    this.#capacity = capacity;
  }

  push(item: T): void {
    if (this.#closed) return;
    if (this.#waiter !== undefined) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter(item);
      return;
    }
    if (this.#items.length >= this.#capacity) {
      const dropped = this.#items.shift()!;
      this.#dropped += 1;
      this.onDrop?.(this.#dropped, dropped);
    }
    this.#items.push(item);
  }

  /** The next item, waiting if none is queued; undefined once the queue is closed. */
  next(): Promise<T | undefined> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Ends the queue; returns the items that were still waiting (they will never be taken). */
  close(): T[] {
    this.#closed = true;
    const discarded = this.#items.splice(0);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(undefined);
    return discarded;
  }

  get dropped(): number {
    return this.#dropped;
  }

  get length(): number {
    return this.#items.length;
  }
}
