/**
 * An analyser's worker operations (frames, loads, closes) run one after another, so a close never races a
 * frame in the worker. One that fails is reported to `onError` and the chain goes on.
 */
export class SerialOps {
  #tail: Promise<void> = Promise.resolve();

  constructor(private readonly onError: (error: unknown) => void) {}

  /** Queues `op` after every earlier one; resolves once it has run. Never rejects. */
  run(op: () => Promise<void>): Promise<void> {
    this.#tail = this.#tail.then(op).catch((error: unknown) => this.onError(error));
    return this.#tail;
  }

  /** Resolves once everything queued so far has run. */
  get settled(): Promise<void> {
    return this.#tail;
  }
}
