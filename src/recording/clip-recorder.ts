import { Readable } from 'node:stream';
import type { Logger } from '../log.js';
import { fragmentDecodeTimes, rebaseFragment } from './fmp4.js';
import { SegmentRing } from './segment-ring.js';
import type { ClipMeta, ClipStream, ClipSummary, MediaSink } from './sink.js';

export interface ClipRecorderOptions {
  cameraId: string;
  preRollMs: number;
  maxClipMs: number;
  /** Ring buffer plus clip bytes waiting for the sink, per camera. */
  memoryCeilingBytes: number;
  sink: MediaSink;
  logger: Logger;
  /** Called when a clip has been handed to the sink completely (or failed). */
  onClipEnded?: (meta: ClipMeta, summary: ClipSummary) => void;
  /** How long an ending clip waits for the fragment holding its last frames. */
  tailWaitMs?: number;
}

interface ActiveClip {
  meta: ClipMeta;
  body: Readable;
  durationMs: number;
  bytes: number;
  lastSeq: number;
  /** Each track's decode time at the clip's first fragment: subtracted from every fragment, so the clip starts at 0. */
  origin: Map<number, bigint> | undefined;
  /** Set when the clip should end after the next fragment (the one holding the frames up to now). */
  ending: ClipSummary['endedBy'] | undefined;
  tailTimer: NodeJS.Timeout | undefined;
  resolveSummary: (summary: ClipSummary) => void;
}

/**
 * Cuts motion clips from the camera's main stream without re-encoding: a clip is the stream's init
 * segment, the pre-roll fragments from the ring, then every new fragment until it is ended. Each
 * fragment's decode time is rebased so the clip starts at 0 (players would otherwise show a 10 s clip cut
 * a minute into the stream as a 70 s one). Its bytes flow to the sink as a stream and exist only in this
 * process's memory.
 */
export class ClipRecorder {
  readonly #o: ClipRecorderOptions;
  readonly #ring: SegmentRing;
  #active: ActiveClip | undefined;
  /** The last fragment that went into a clip: a following clip does not repeat it. */
  #lastSeqUsed = -1;
  readonly #deliveries = new Set<Promise<void>>();
  #clips = 0;

  constructor(options: ClipRecorderOptions) {
    this.#o = options;
    this.#ring = new SegmentRing({ preRollMs: options.preRollMs, maxBytes: Math.floor(options.memoryCeilingBytes / 2) });
  }

  get active(): boolean {
    return this.#active !== undefined;
  }

  get clipsMade(): number {
    return this.#clips;
  }

  /** Bytes held for this camera now: ring plus clip bytes not yet taken by the sink. */
  get bytesHeld(): number {
    return this.#ring.bytes + (this.#active?.body.readableLength ?? 0);
  }

  /** A new stream started: a clip from the old one ends here (its fragments would not fit the new init). */
  onInit(init: Buffer): void {
    if (this.#active !== undefined) this.#finish('stream-lost');
    this.#ring.setInit(init);
    this.#lastSeqUsed = -1;
  }

  onFragment(bytes: Buffer, durationMs: number, at: number): void {
    const fragment = this.#ring.push(bytes, durationMs, at);
    const clip = this.#active;
    if (clip === undefined) return;
    this.#append(clip, fragment.seq, bytes, durationMs);
    if (clip.ending !== undefined) this.#finish(clip.ending);
    else if (clip.durationMs >= this.#o.maxClipMs) this.#finish('max-length');
    else if (this.bytesHeld > this.#o.memoryCeilingBytes) {
      // The sink is not keeping up: end the clip rather than grow without bound.
      this.#o.logger.warn({ camera: this.#o.cameraId, bytesHeld: this.bytesHeld }, 'clip ended at the memory ceiling: the sink is too slow');
      this.#finish('memory-ceiling');
    }
  }

  /** The stream was lost: an open clip ends with what it has. */
  onStreamEnd(): void {
    if (this.#active !== undefined) this.#finish('stream-lost');
  }

  /**
   * Starts a clip for an event; returns false when one is already running or no stream is up yet.
   * The clip begins with the ring's pre-roll, never repeating fragments an earlier clip already holds.
   * `settled` is passed on in the clip's meta (ClipMeta.settled).
   */
  start(eventId: string, motionAt: number, settled?: ClipMeta['settled']): boolean {
    const init = this.#ring.init;
    if (this.#active !== undefined || init === undefined) return false;
    const preRoll = this.#ring.fragments(this.#lastSeqUsed);
    let resolveSummary!: (summary: ClipSummary) => void;
    const summary = new Promise<ClipSummary>((resolve) => (resolveSummary = resolve));
    const meta: ClipMeta = {
      eventId,
      cameraId: this.#o.cameraId,
      startedAt: preRoll[0]?.start ?? motionAt,
      motionAt,
      contentType: 'video/mp4',
      ...(settled === undefined ? {} : { settled }),
    };
    // No read() implementation: bytes are pushed as fragments arrive; the sink pulls at its own pace and
    // the memory ceiling above bounds what waits.
    const body = new Readable({ read() {} });
    const clip: ActiveClip = {
      meta,
      body,
      durationMs: 0,
      bytes: 0,
      lastSeq: this.#lastSeqUsed,
      origin: undefined,
      ending: undefined,
      tailTimer: undefined,
      resolveSummary,
    };
    this.#active = clip;
    this.#clips += 1;
    body.push(init);
    clip.bytes += init.length;
    for (const f of preRoll) this.#append(clip, f.seq, f.bytes, f.durationMs);
    this.#deliver({ meta, body, summary });
    return true;
  }

  /**
   * Ends the running clip. With `motion-stopped` it waits for the next fragment (which holds the frames
   * up to now) or `tailWaitMs`, whichever comes first; other reasons end it at once.
   */
  end(reason: ClipSummary['endedBy']): void {
    const clip = this.#active;
    if (clip === undefined) return;
    if (reason !== 'motion-stopped') {
      this.#finish(reason);
      return;
    }
    clip.ending = reason;
    clip.tailTimer = setTimeout(() => {
      if (this.#active === clip) this.#finish(reason);
    }, this.#o.tailWaitMs ?? 3000);
  }

  /** Ends any clip ('shutdown') and waits until the sink has taken every clip. */
  async stop(): Promise<void> {
    if (this.#active !== undefined) this.#finish('shutdown');
    await Promise.allSettled([...this.#deliveries]);
    this.#ring.clear();
  }

  #append(clip: ActiveClip, seq: number, bytes: Buffer, durationMs: number): void {
    // A sink that failed has destroyed the body: keep counting, hold nothing.
    if (!clip.body.destroyed) {
      try {
        clip.origin ??= fragmentDecodeTimes(bytes);
        for (const part of rebaseFragment(bytes, clip.origin)) clip.body.push(part);
      } catch (error) {
        // The splitter only hands on moof+mdat pairs, so this is a malformed moof: keep it as it came.
        this.#o.logger.warn({ camera: this.#o.cameraId, err: error }, 'clip fragment not rebased');
        clip.body.push(bytes);
      }
    }
    clip.bytes += bytes.length;
    clip.durationMs += durationMs;
    clip.lastSeq = seq;
    this.#lastSeqUsed = Math.max(this.#lastSeqUsed, seq);
  }

  #finish(endedBy: ClipSummary['endedBy']): void {
    const clip = this.#active;
    if (clip === undefined) return;
    this.#active = undefined;
    clearTimeout(clip.tailTimer);
    const summary: ClipSummary = { durationMs: Math.round(clip.durationMs), bytes: clip.bytes, endedBy };
    if (!clip.body.destroyed) clip.body.push(null);
    clip.resolveSummary(summary);
    this.#o.onClipEnded?.(clip.meta, summary);
  }

  #deliver(clip: ClipStream): void {
    const delivery = this.#o.sink.clip(clip).catch((error: unknown) => {
      this.#o.logger.error(
        { camera: this.#o.cameraId, event: clip.meta.eventId, err: error },
        'the sink failed to take a clip',
      );
      clip.body.destroy();
    });
    this.#deliveries.add(delivery);
    void delivery.finally(() => this.#deliveries.delete(delivery));
  }
}
