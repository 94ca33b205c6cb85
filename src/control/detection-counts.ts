import type { EventBus } from '../events.js';
import type { ObjectLabel } from '../policy/vocabulary.js';
import { RecentIds } from './recent-ids.js';

/** One camera's count for one label. */
export interface LabelCount {
  /** Objects confirmed since counting began (one per tracked object, however many frames it was seen in). */
  confirmed: number;
  /** When the last of them was confirmed (Unix ms, the event's time). */
  lastAt: number;
}

/**
 * What the state's sealed part says about detections: per camera pseudonym, per label seen at least once,
 * the objects confirmed since `since`. Only in the sealed state: the broker must not learn what happens in
 * front of a camera (docs/mqtt-api.md).
 */
export interface DetectionCountsState {
  /** When counting began: the control service's start, Unix ms. Counts are not kept across restarts. */
  since: number;
  cameras: Record<string, Partial<Record<ObjectLabel, LabelCount>>>;
}

export interface DetectionCountsOptions {
  bus: EventBus;
  /** The camera's pseudonym (the id the state and alerts name cameras by). */
  cameraPseudonym: (cameraId: string) => string;
  /** Unix milliseconds (tests inject one). */
  now?: () => number;
}

/** Track ids remembered to count each object once even if its confirmation were told twice. */
const REMEMBERED_TRACKS = 1024;

/**
 * Counts confirmed objects per camera and label from the bus (`object.confirmed`), each track once. Memory
 * is bounded: one entry per camera and label, and the last 1024 track ids. A camera removed keeps its
 * counts until the hub restarts (they say what was seen since `since`).
 */
export class DetectionCounts {
  readonly #o: DetectionCountsOptions;
  readonly #tracks = new RecentIds(REMEMBERED_TRACKS);
  readonly #counts = new Map<string, Map<ObjectLabel, LabelCount>>();
  #since: number | undefined;
  #off: (() => void) | undefined;

  constructor(options: DetectionCountsOptions) {
    this.#o = options;
  }

  /** Starts counting (from zero on the first start). */
  start(): void {
    if (this.#off !== undefined) return;
    this.#since ??= (this.#o.now ?? Date.now)();
    this.#off = this.#o.bus.on('object.confirmed', (e) => this.#count(e.cameraId, e.trackId, e.label, e.at));
  }

  stop(): void {
    this.#off?.();
    this.#off = undefined;
  }

  /** The counts now, for the sealed state; undefined before the first start. */
  snapshot(): DetectionCountsState | undefined {
    if (this.#since === undefined) return undefined;
    const cameras: DetectionCountsState['cameras'] = {};
    for (const [camera, labels] of this.#counts) cameras[camera] = Object.fromEntries([...labels].map(([label, count]) => [label, { ...count }]));
    return { since: this.#since, cameras };
  }

  #count(cameraId: string, trackId: string, label: ObjectLabel, at: number): void {
    if (!this.#tracks.admit(`${cameraId}\n${trackId}`)) return;
    const camera = this.#o.cameraPseudonym(cameraId);
    let labels = this.#counts.get(camera);
    if (labels === undefined) {
      labels = new Map();
      this.#counts.set(camera, labels);
    }
    const count = labels.get(label);
    if (count === undefined) labels.set(label, { confirmed: 1, lastAt: at });
    else {
      count.confirmed += 1;
      count.lastAt = Math.max(count.lastAt, at);
    }
  }
}
