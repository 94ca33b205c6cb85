import { distance } from './descriptor-distance.js';
import { MATCH_THRESHOLD } from './threshold.js';

/** One enrolled person as the matcher needs them: an id (a `person_…` pseudonym) and their templates, decrypted, in RAM only. */
export interface EnrolledPerson {
  personId: string;
  templates: readonly Float32Array[];
  /**
   * Faces the household said are not this person ("this is not X" on a sighting). A descriptor at least as
   * close to one of these as to the person's nearest template is not matched to them.
   */
  negatives?: readonly Float32Array[];
}

/**
 * A confirmed sighting, reported once it has been seen in enough recent frames. `descriptor` is the face
 * that confirmed it (for a known person the one nearest their templates in that frame; for unknown faces
 * the first in the frame), kept so that the household can correct the sighting.
 */
export type FaceSighting = ({ kind: 'known'; personId: string; distance: number } | { kind: 'unknown' }) & { descriptor: Float32Array };

export interface MatcherOptions {
  /** Distance below which a descriptor matches a template (default MATCH_THRESHOLD). */
  threshold?: number;
  /** Frames that must agree before a sighting is reported (default 2) … */
  confirmations?: number;
  /** … among the last this many analysed frames of the camera (default 3) … */
  window?: number;
  /** … all within this many ms (default 10 000). */
  windowMs?: number;
  /** The same person (or "unknown") on the same camera is reported again only after this long (default 60 000 ms). */
  repeatAfterMs?: number;
}

/** The label a frame gives each face: a person id, or this for faces that match nobody. */
const UNKNOWN = 'unknown';

function nearest(descriptor: Float32Array, set: readonly Float32Array[]): number {
  let best = Number.POSITIVE_INFINITY;
  for (const t of set) best = Math.min(best, distance(descriptor, t));
  return best;
}

/**
 * The person whose nearest template is closest and below `threshold`, or undefined (an unknown face). Pure.
 * A person is passed over when the descriptor is at least as close to one of their negatives as to their
 * nearest template: the next nearest person below the threshold is taken then, else nobody. Ties between
 * people go to the one listed first.
 */
export function nearestPerson(descriptor: Float32Array, people: readonly EnrolledPerson[], threshold = MATCH_THRESHOLD): { personId: string; distance: number } | undefined {
  let best: { personId: string; distance: number } | undefined;
  for (const person of people) {
    const d = nearest(descriptor, person.templates);
    if (d >= threshold || (best !== undefined && d >= best.distance)) continue;
    // "This is not X": a stranger once taken for X stays closer to that face than to X's templates.
    if (person.negatives !== undefined && person.negatives.length > 0 && nearest(descriptor, person.negatives) <= d) continue;
    best = { personId: person.personId, distance: d };
  }
  return best;
}

interface Seen {
  at: number;
  /** Label → best distance in that frame (0 for unknown), and the descriptor that had it. */
  labels: Map<string, { distance: number; descriptor: Float32Array }>;
}

/**
 * Turns per-frame descriptors into confirmed sightings per camera. One frame is not enough: a single
 * blurred frame can land under the threshold for the wrong person, and a turned head can look like a
 * stranger; requiring `confirmations` of the last `window` frames within `windowMs` filters both. Pure
 * apart from its own per-camera history; time comes in with each frame.
 */
export class FaceMatcher {
  readonly #threshold: number;
  readonly #confirmations: number;
  readonly #window: number;
  readonly #windowMs: number;
  readonly #repeatAfterMs: number;
  #people: readonly EnrolledPerson[] = [];
  readonly #history = new Map<string, Seen[]>();
  readonly #reported = new Map<string, Map<string, number>>();

  constructor(options: MatcherOptions = {}) {
    this.#threshold = options.threshold ?? MATCH_THRESHOLD;
    this.#confirmations = options.confirmations ?? 2;
    this.#window = options.window ?? 3;
    this.#windowMs = options.windowMs ?? 10_000;
    this.#repeatAfterMs = options.repeatAfterMs ?? 60_000;
  }

  /** Replaces the enrolled people (after an enrolment, a rename or a deletion); history is kept. */
  setPeople(people: readonly EnrolledPerson[]): void {
    this.#people = people;
  }

  get peopleCount(): number {
    return this.#people.length;
  }

  /**
   * Records one analysed frame of a camera (with its usable faces' descriptors, possibly none) and returns
   * the sightings that became confirmed with it.
   */
  observe(cameraId: string, at: number, descriptors: readonly Float32Array[]): FaceSighting[] {
    const labels = new Map<string, { distance: number; descriptor: Float32Array }>();
    for (const descriptor of descriptors) {
      const match = nearestPerson(descriptor, this.#people, this.#threshold);
      const label = match?.personId ?? UNKNOWN;
      const d = match?.distance ?? 0;
      const prior = labels.get(label);
      if (prior === undefined || d < prior.distance) labels.set(label, { distance: d, descriptor });
    }
    const history = (this.#history.get(cameraId) ?? []).filter((s) => at - s.at <= this.#windowMs);
    history.push({ at, labels });
    while (history.length > this.#window) history.shift();
    this.#history.set(cameraId, history);

    const reported = this.#reported.get(cameraId) ?? new Map<string, number>();
    this.#reported.set(cameraId, reported);
    const out: FaceSighting[] = [];
    for (const [label, { distance: d, descriptor }] of labels) {
      const seen = history.filter((s) => s.labels.has(label)).length;
      if (seen < this.#confirmations) continue;
      const last = reported.get(label);
      if (last !== undefined && at - last < this.#repeatAfterMs) continue;
      reported.set(label, at);
      out.push(label === UNKNOWN ? { kind: 'unknown', descriptor } : { kind: 'known', personId: label, distance: d, descriptor });
    }
    return out;
  }

  /** Drops the history of one camera, or of all (when faces stop, so nothing half-confirmed lingers). */
  forget(cameraId?: string): void {
    if (cameraId === undefined) {
      this.#history.clear();
      this.#reported.clear();
      return;
    }
    this.#history.delete(cameraId);
    this.#reported.delete(cameraId);
  }
}
