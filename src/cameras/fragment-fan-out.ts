import type { Logger } from '../log.js';

/** Something that takes a camera's main stream as fragmented MP4: the clip recorder, a live view. */
export interface FragmentSubscriber {
  /** Names the subscriber in logs. */
  readonly name: string;
  /**
   * A stream's initialisation segment (`ftyp`+`moov`): every fragment after it belongs to that stream. Sent
   * when a stream begins and, to a subscriber that joins while one is running, before its first fragment.
   */
  onInit(init: Buffer): void;
  /** One keyframe-aligned `moof`+`mdat` pair; `at` is its arrival time (epoch ms). */
  onFragment(bytes: Buffer, durationMs: number, at: number): void;
  /** The stream ended (lost, or stopped): the next fragment, if any, comes after a new init segment. */
  onStreamEnd?(): void;
}

/** Ends a subscription; calling it again does nothing. */
export type Unsubscribe = () => void;

/** Failures logged per subscriber: the first, then one in this many, so a broken one cannot flood the log. */
const LOG_EVERY = 100;

/**
 * Hands one camera's fragments to every subscriber, which may join and leave at any time. Remembers the
 * current stream's init segment so a late joiner can decode what follows (fragments start at keyframes).
 * A subscriber that throws is logged and keeps its place; it neither stops the others nor the ingest.
 */
export class FragmentFanOut {
  readonly #cameraId: string;
  readonly #logger: Logger;
  #subscribers: ReadonlyArray<{ subscriber: FragmentSubscriber; failures: number }> = [];
  #init: Buffer | undefined;

  constructor(cameraId: string, logger: Logger) {
    this.#cameraId = cameraId;
    this.#logger = logger;
  }

  /** How many subscribers there are now. */
  get size(): number {
    return this.#subscribers.length;
  }

  /** Joins `subscriber`: it gets the current init segment at once when a stream is running. */
  subscribe(subscriber: FragmentSubscriber): Unsubscribe {
    const entry = { subscriber, failures: 0 };
    this.#subscribers = [...this.#subscribers, entry];
    const init = this.#init;
    if (init !== undefined) this.#call(entry, (s) => s.onInit(init));
    return () => {
      this.#subscribers = this.#subscribers.filter((e) => e !== entry);
    };
  }

  /** A stream began with `init`. */
  init(init: Buffer): void {
    this.#init = init;
    this.#each((s) => s.onInit(init));
  }

  fragment(bytes: Buffer, durationMs: number, at: number): void {
    this.#each((s) => s.onFragment(bytes, durationMs, at));
  }

  /** The stream ended: its init segment no longer describes what comes next. */
  streamEnd(): void {
    this.#init = undefined;
    this.#each((s) => s.onStreamEnd?.());
  }

  /** Over a copy of the list taken now: a subscriber that joins or leaves during a call changes the next one. */
  #each(call: (subscriber: FragmentSubscriber) => void): void {
    for (const entry of this.#subscribers) this.#call(entry, call);
  }

  #call(entry: { subscriber: FragmentSubscriber; failures: number }, call: (subscriber: FragmentSubscriber) => void): void {
    try {
      call(entry.subscriber);
    } catch (error) {
      entry.failures += 1;
      if (entry.failures === 1 || entry.failures % LOG_EVERY === 0) {
        this.#logger.error({ camera: this.#cameraId, subscriber: entry.subscriber.name, failures: entry.failures, err: error }, 'fragment subscriber failed');
      }
    }
  }
}
