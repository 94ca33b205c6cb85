import { randomBytes } from 'node:crypto';
import { base32 } from '../../crypto/base32.js';
import type { ObjectLabel } from '../../policy/vocabulary.js';
import { centre, iou, type Box } from '../box.js';
import type { DetectedObject } from '../frame-analyser.js';

/**
 * Follows one camera's objects across the frames the objects analyser looks at, so one person walking
 * through is one track (one `object` alert, one best snapshot), not one per frame.
 *
 * Matching is per label: a person is matched only to person tracks, so a car and a person crossing keep
 * their own. Within a label (a car later scored as a truck stays one vehicle), each track's box is first
 * moved to where its velocity so far puts it now (two people crossing are told apart by where each was
 * heading), then pairs are matched greedily, best first: by overlap (IoU at least `minIou`), then, for
 * what is left, by how far the centre is from where it was expected (at most `maxShift` times the larger
 * box's diagonal, boxes of similar size): at 2 frames a second, a small or fast object (a cat, a cyclist)
 * often does not overlap its last box at all.
 *
 * A track is confirmed once, on the frame where it has been seen in `confirmHits` of the last
 * `confirmWindow` frames analysed for the camera (2 of 3): a single-frame false positive never is. A track
 * that can no longer be confirmed is dropped without a word; a confirmed track ends when it was not seen
 * for `maxAgeMs` (elapsed time, not frames: the analyser is only offered frames with motion, so frames are
 * irregular, and a person standing still sends none).
 */

export interface ObjectTrackerOptions {
  /** Least IoU for a detection to continue a track (default 0.3). */
  minIou?: number;
  /** Farthest a track's centre may move between its frames, in diagonals of the larger box (default 1). */
  maxShift?: number;
  /** Largest area ratio between a track's last box and a detection matched by distance (default 4). */
  maxAreaRatio?: number;
  /** Seen in this many… (default 2) */
  confirmHits?: number;
  /** …of the last this many analysed frames confirms a track (default 3). */
  confirmWindow?: number;
  /** A confirmed track not seen for this long ends (default 5 000 ms). */
  maxAgeMs?: number;
}

export const TRACKER_DEFAULTS: Readonly<Required<ObjectTrackerOptions>> = Object.freeze({
  minIou: 0.3,
  maxShift: 1,
  maxAreaRatio: 4,
  confirmHits: 2,
  confirmWindow: 3,
  maxAgeMs: 5_000,
});

/** What the tracker tells of a track when it is confirmed or ends. Times are the caller's elapsed ms. */
export interface TrackInfo {
  /** `trk_` and 16 base32 characters (80 random bits). */
  trackId: string;
  label: ObjectLabel;
  /** The COCO class of its best detection. */
  cocoClass: string;
  bestScore: number;
  bestBox: Box;
  firstAt: number;
  lastAt: number;
}

/** One detection as the tracker takes it: after the camera's filter (object-filter.ts). */
export type TrackerDetection = Pick<DetectedObject, 'label' | 'cocoClass' | 'score' | 'box'>;

export interface TrackerUpdate {
  /** This frame's detections, each with the id of its track. */
  objects: DetectedObject[];
  /** Tracks confirmed on this frame (each track once in its life). */
  confirmed: TrackInfo[];
  /** Confirmed tracks that ended on this frame. */
  ended: TrackInfo[];
}

export const TRACK_ID_PATTERN = /^trk_[a-z2-7]{16}$/;

/** A new random track id: `trk_` and 16 base32 characters. */
export function newTrackId(): string {
  return `trk_${base32(randomBytes(10))}`;
}

interface Track extends TrackInfo {
  /** Its last box. */
  box: Box;
  /** Its centre's velocity in pixels per elapsed ms (smoothed over its steps); 0 until it has moved once. */
  vx: number;
  vy: number;
  /** How many steps (sightings after the first, at a later time) the velocity is made of. */
  steps: number;
  /** Seen (true) or not (false) on each analysed frame since it began, newest last; at most `confirmWindow` kept. */
  recent: boolean[];
  confirmed: boolean;
}

export class ObjectTracker {
  readonly #o: Required<ObjectTrackerOptions>;
  #tracks: Track[] = [];

  constructor(options: ObjectTrackerOptions = {}) {
    this.#o = { ...TRACKER_DEFAULTS, ...options };
  }

  /** How long a confirmed track lives unseen. */
  get maxAgeMs(): number {
    return this.#o.maxAgeMs;
  }

  /** How many tracks are followed now (confirmed or not). */
  get size(): number {
    return this.#tracks.length;
  }

  /** One analysed frame at `elapsedMs` (never earlier than the last), with what it found after the filter. */
  update(elapsedMs: number, detections: readonly TrackerDetection[]): TrackerUpdate {
    const matchOf = this.#match(elapsedMs, detections);
    const objects: DetectedObject[] = [];
    const confirmed: TrackInfo[] = [];
    const matched = new Set<Track>();
    detections.forEach((d, i) => {
      let track = matchOf.get(i);
      if (track === undefined) {
        track = {
          trackId: newTrackId(),
          label: d.label,
          cocoClass: d.cocoClass,
          bestScore: d.score,
          bestBox: { ...d.box },
          firstAt: elapsedMs,
          lastAt: elapsedMs,
          box: { ...d.box },
          vx: 0,
          vy: 0,
          steps: 0,
          recent: [],
          confirmed: false,
        };
        this.#tracks.push(track);
      } else {
        const dt = elapsedMs - track.lastAt;
        if (dt > 0) {
          const from = centre(track.box);
          const to = centre(d.box);
          // The first step sets the velocity; later ones are averaged with it.
          const keep = track.steps === 0 ? 0 : 0.5;
          track.vx = keep * track.vx + (1 - keep) * ((to.x - from.x) / dt);
          track.vy = keep * track.vy + (1 - keep) * ((to.y - from.y) / dt);
          track.steps += 1;
        }
        track.box = { ...d.box };
        track.lastAt = Math.max(track.lastAt, elapsedMs);
        if (d.score > track.bestScore) {
          track.bestScore = d.score;
          track.bestBox = { ...d.box };
          track.cocoClass = d.cocoClass;
        }
      }
      matched.add(track);
      objects.push({ label: d.label, cocoClass: d.cocoClass, score: d.score, box: { ...d.box }, trackId: track.trackId });
    });

    const ended: TrackInfo[] = [];
    const window = this.#o.confirmWindow;
    this.#tracks = this.#tracks.filter((t) => {
      t.recent.push(matched.has(t));
      if (t.recent.length > window) t.recent.shift();
      if (!t.confirmed && t.recent.filter(Boolean).length >= this.#o.confirmHits) {
        t.confirmed = true;
        confirmed.push(info(t));
      }
      if (t.confirmed) {
        if (elapsedMs - t.lastAt < this.#o.maxAgeMs) return true;
        ended.push(info(t));
        return false;
      }
      // Unconfirmed: kept while the next frame could still confirm it.
      return t.recent.slice(-(window - 1)).filter(Boolean).length >= this.#o.confirmHits - 1 && elapsedMs - t.lastAt < this.#o.maxAgeMs;
    });
    return { objects, confirmed, ended };
  }

  /**
   * Ends every track (the stream was lost, the analyser stops): the confirmed ones are returned as ended,
   * each with the time it was last seen. `_elapsedMs` (when it ended) is the caller's to report on the bus.
   */
  end(_elapsedMs?: number): TrackInfo[] {
    const ended = this.#tracks.filter((t) => t.confirmed).map(info);
    this.#tracks = [];
    return ended;
  }

  /** Forgets every track without reporting any. */
  clear(): void {
    this.#tracks = [];
  }

  /**
   * Detection index → the track it continues: greedy per label, IoU pairs first, then centre distance,
   * each against the better of the track's last box and that box moved by its velocity to `elapsedMs`
   * (at most {@link MAX_PREDICTION_MS} ahead: someone who stopped is still found where they stopped).
   */
  #match(elapsedMs: number, detections: readonly TrackerDetection[]): Map<number, Track> {
    const expected = new Map(this.#tracks.map((t) => [t, [t.box, predicted(t, elapsedMs)]] as const));
    const pairs: { track: Track; index: number; rank: number }[] = [];
    detections.forEach((d, index) => {
      for (const track of this.#tracks) {
        if (track.label !== d.label) continue;
        const rank = Math.max(...expected.get(track)!.map((box) => this.#rank(box, d.box)));
        if (rank > 0) pairs.push({ track, index, rank });
      }
    });
    pairs.sort((a, b) => b.rank - a.rank);
    const byIndex = new Map<number, Track>();
    const taken = new Set<Track>();
    for (const { track, index } of pairs) {
      if (byIndex.has(index) || taken.has(track)) continue;
      byIndex.set(index, track);
      taken.add(track);
    }
    return byIndex;
  }

  /**
   * How well a detection continues a track whose box is expected at `box`: 2 + IoU for an overlap of at
   * least `minIou`; between 0 and 1 for a centre within `maxShift` diagonals and a similar size (nearer is
   * higher); 0 for no match.
   */
  #rank(box: Box, detected: Box): number {
    const overlap = iou(box, detected);
    if (overlap >= this.#o.minIou) return 2 + overlap;
    const shift = distance(box, detected) / Math.max(diagonal(box), diagonal(detected), 1);
    const [small, large] = [area(box), area(detected)].sort((a, b) => a - b) as [number, number];
    if (shift > this.#o.maxShift || large > this.#o.maxAreaRatio * small) return 0;
    return 1 - shift / (this.#o.maxShift + 1);
  }
}

function info(t: Track): TrackInfo {
  return { trackId: t.trackId, label: t.label, cocoClass: t.cocoClass, bestScore: t.bestScore, bestBox: { ...t.bestBox }, firstAt: t.firstAt, lastAt: t.lastAt };
}

/** How far ahead a track's velocity is trusted: two frames at 2 frames a second. */
const MAX_PREDICTION_MS = 1_000;

/** Where the track's last box should be at `elapsedMs`, if it kept its velocity (at most MAX_PREDICTION_MS ahead). */
function predicted(t: Track, elapsedMs: number): Box {
  const dt = Math.min(MAX_PREDICTION_MS, Math.max(0, elapsedMs - t.lastAt));
  return { ...t.box, x: t.box.x + t.vx * dt, y: t.box.y + t.vy * dt };
}

const diagonal = (b: Box): number => Math.hypot(b.width, b.height);
const area = (b: Box): number => Math.max(0, b.width) * Math.max(0, b.height);

function distance(a: Box, b: Box): number {
  const p = centre(a);
  const q = centre(b);
  return Math.hypot(p.x - q.x, p.y - q.y);
}
