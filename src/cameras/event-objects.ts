import type { DetectedObject } from '../analysis/frame-analyser.js';
import { OBJECT_LABELS, type ObjectLabel } from '../policy/vocabulary.js';
import type { EventObjects } from '../recording/sink.js';
import type { AnalysisFrame } from './frame.js';

/** Priority of a label: lower is shown first (person, animal, vehicle). */
const labelRank = (label: ObjectLabel): number => OBJECT_LABELS.indexOf(label);

/** Whether `a` should be an event's snapshot object rather than `b`: a higher-priority label, then a higher score. */
function outranks(a: DetectedObject, b: DetectedObject): boolean {
  const ra = labelRank(a.label);
  const rb = labelRank(b.label);
  return ra !== rb ? ra < rb : a.score > b.score;
}

/**
 * What the objects analyser saw during one motion event: the best score per label, the best object of the
 * highest-priority label and the frame it is in (the event's snapshot), and how many of the event's frames
 * still wait for the analyser's answer, so that the event can wait for them when it closes (bounded).
 */
export class EventObjectsTally {
  #pending = 0;
  #looked = false;
  readonly #scores = new Map<ObjectLabel, number>();
  #best: { object: DetectedObject; frame: AnalysisFrame } | undefined;
  #onSettled: (() => void) | undefined;

  /** A frame of the event was offered to the objects analyser. */
  offered(): void {
    this.#pending += 1;
  }

  /** The analyser's answer for one of the event's frames: what it found, or undefined when it did not look. */
  answered(found: readonly DetectedObject[] | undefined, frame: AnalysisFrame): void {
    if (found !== undefined) {
      this.#looked = true;
      for (const object of found) {
        this.#scores.set(object.label, Math.max(object.score, this.#scores.get(object.label) ?? 0));
        if (this.#best === undefined || outranks(object, this.#best.object)) this.#best = { object, frame };
      }
    }
    this.#pending -= 1;
    if (this.#pending === 0) this.#onSettled?.();
  }

  /** The frame with the event's best object, if any. */
  get bestFrame(): AnalysisFrame | undefined {
    return this.#best?.frame;
  }

  /** Resolves once every offered frame has been answered, or after `limitMs`. */
  settled(limitMs: number): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, limitMs);
      this.#onSettled = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** For the event's record; undefined when the analyser never looked at one of its frames. */
  summary(): EventObjects | undefined {
    if (!this.#looked) return undefined;
    const labels = OBJECT_LABELS.filter((l) => this.#scores.has(l));
    const scores: EventObjects['scores'] = Object.fromEntries(labels.map((l) => [l, this.#scores.get(l)!]));
    const best = this.#best?.object;
    return { labels, scores, ...(best === undefined ? {} : { snapshotObject: { label: best.label, cocoClass: best.cocoClass, score: best.score, box: best.box } }) };
  }
}
