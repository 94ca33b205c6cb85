/** A keyframe-aligned piece of the main stream held in RAM. */
export interface RingFragment {
  /** Increases by one per fragment received. */
  seq: number;
  /** Wall-clock estimate of the fragment's first frame: arrival minus its duration (ffmpeg writes a fragment once it is complete). */
  start: number;
  /** Arrival time, ms since the epoch. */
  at: number;
  durationMs: number;
  bytes: Buffer;
}

export interface SegmentRingOptions {
  /** Keep enough fragments that the oldest starts at least this long before the newest ended. */
  preRollMs: number;
  /** Hard ceiling on the bytes held; the oldest fragments go first. */
  maxBytes: number;
}

/**
 * The pre-roll: the last few seconds of the main stream, in memory only, as whole keyframe-aligned
 * fragments so a clip can start with a decodable frame. Its size is bounded by time and by bytes.
 */
export class SegmentRing {
  readonly #o: SegmentRingOptions;
  readonly #fragments: RingFragment[] = [];
  #init: Buffer | undefined;
  #bytes = 0;
  #seq = 0;

  constructor(options: SegmentRingOptions) {
    this.#o = options;
  }

  /** A new stream: its init segment replaces the old one and the old fragments no longer apply. */
  setInit(init: Buffer): void {
    this.#init = init;
    this.clear();
  }

  get init(): Buffer | undefined {
    return this.#init;
  }

  push(bytes: Buffer, durationMs: number, at: number): RingFragment {
    // Whole milliseconds: a sample table gives fractional durations (15 fps: 66.67 ms a frame), and clip
    // start times are stored as integers.
    const fragment: RingFragment = { seq: this.#seq++, start: Math.round(at - durationMs), at, durationMs, bytes };
    this.#fragments.push(fragment);
    this.#bytes += bytes.length;
    const horizon = at - this.#o.preRollMs;
    // Drop the oldest while the next one alone still reaches back far enough.
    while (this.#fragments.length > 1 && this.#fragments[1]!.start <= horizon) this.#dropOldest();
    while (this.#fragments.length > 1 && this.#bytes > this.#o.maxBytes) this.#dropOldest();
    return fragment;
  }

  /** The fragments held now, oldest first, optionally only those after sequence number `afterSeq`. */
  fragments(afterSeq = -1): RingFragment[] {
    return this.#fragments.filter((f) => f.seq > afterSeq);
  }

  get bytes(): number {
    return this.#bytes + (this.#init?.length ?? 0);
  }

  clear(): void {
    this.#fragments.length = 0;
    this.#bytes = 0;
  }

  #dropOldest(): void {
    const dropped = this.#fragments.shift();
    if (dropped !== undefined) this.#bytes -= dropped.bytes.length;
  }
}
