import type { Box } from '../box.js';
import type { DetectedObject } from '../frame-analyser.js';

/**
 * Looks for faces a person track gets in a row before they are rationed: the face matcher confirms a
 * sighting on 2 of 3 frames (matcher.ts), so three looks give it its chance. (Four cost 15 face passes on
 * the sample video's 34 motion frames, 1.16× the CPU of faces on every motion frame: bench -- objects.)
 */
const LOOKS_PER_TRACK = 3;
/**
 * After its first looks, a person who stays in view is looked at again this often (elapsed ms): someone
 * who turns towards the camera later is still recognised, and the matcher reports the same person again
 * only after a minute anyway.
 */
const RELOOK_MS = 5_000;
/** Tracks remembered per camera; the oldest is forgotten first (a track not seen for long has ended). */
const MAX_TRACKS = 256;

/**
 * Which of the people in a frame still need their faces looked for: each person track a few times when
 * it appears, then once every few seconds while it stays. Frigate runs face recognition per person object
 * in the same spirit. This is what makes faces on people cheaper than faces on every frame with motion: a
 * household member crossing the garden for ten seconds costs four or five face passes, not twenty.
 * People without a track (none should come) are always due.
 */
export class PersonFaceLooks {
  readonly #tracks = new Map<string, { looks: number; lastAt: number }>();

  /** The boxes of the people due a look in this frame (`at`: elapsed ms), counted as looked at. */
  due(people: readonly DetectedObject[], at: number): Box[] {
    const due: Box[] = [];
    for (const person of people) {
      const id = person.trackId;
      if (id === undefined) {
        due.push(person.box);
        continue;
      }
      const seen = this.#tracks.get(id);
      if (seen !== undefined && seen.looks >= LOOKS_PER_TRACK && at - seen.lastAt < RELOOK_MS) continue;
      this.#tracks.delete(id);
      this.#tracks.set(id, { looks: (seen?.looks ?? 0) + 1, lastAt: at });
      due.push(person.box);
    }
    while (this.#tracks.size > MAX_TRACKS) this.#tracks.delete(this.#tracks.keys().next().value!);
    return due;
  }
}
