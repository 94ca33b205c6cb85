/**
 * The ids seen most recently, at most `capacity` of them (the oldest forgotten first): enough to answer
 * "was this one seen already?" for ids that repeat close together, in bounded memory.
 */
export class RecentIds {
  readonly #capacity: number;
  /** Insertion order is the age order (a Set iterates in it). */
  readonly #ids = new Set<string>();

  constructor(capacity: number) {
    this.#capacity = Math.max(1, Math.floor(capacity));
  }

  /** True when `id` is new (and remembers it); false when it was seen among the last `capacity`. */
  admit(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.#capacity) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
    return true;
  }

  get size(): number {
    return this.#ids.size;
  }
}
