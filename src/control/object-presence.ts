import type { ObjectLabel } from '../policy/vocabulary.js';

/** Confirmed tracks remembered per camera and label; past it the oldest is forgotten (the label stays present). */
const MAX_TRACKS_PER_LABEL = 64;

/**
 * Which labels are in front of which camera now: the confirmed tracks not yet ended, per camera and label
 * (what Home Assistant's object sensors show). A label is present while at least one of its confirmed
 * tracks is active. Memory is bounded: at most 64 tracks per camera and label.
 */
export class ObjectPresence {
  readonly #tracks = new Map<string, Map<ObjectLabel, Set<string>>>();

  /** A track confirmed; true when this made the label present on the camera (it was not before). */
  confirm(cameraId: string, label: ObjectLabel, trackId: string): boolean {
    let labels = this.#tracks.get(cameraId);
    if (labels === undefined) {
      labels = new Map();
      this.#tracks.set(cameraId, labels);
    }
    let tracks = labels.get(label);
    if (tracks === undefined) {
      tracks = new Set();
      labels.set(label, tracks);
    }
    const was = tracks.size > 0;
    tracks.add(trackId);
    if (tracks.size > MAX_TRACKS_PER_LABEL) {
      const oldest = tracks.values().next().value;
      if (oldest !== undefined) tracks.delete(oldest);
    }
    return !was;
  }

  /** A track ended; true when it was the label's last on the camera (the label is no longer present). Unknown tracks change nothing. */
  end(cameraId: string, label: ObjectLabel, trackId: string): boolean {
    const labels = this.#tracks.get(cameraId);
    const tracks = labels?.get(label);
    if (labels === undefined || tracks === undefined || !tracks.delete(trackId)) return false;
    if (tracks.size > 0) return false;
    labels.delete(label);
    if (labels.size === 0) this.#tracks.delete(cameraId);
    return true;
  }

  present(cameraId: string, label: ObjectLabel): boolean {
    return (this.#tracks.get(cameraId)?.get(label)?.size ?? 0) > 0;
  }

  /** Forgets a camera's tracks (it stopped, or is gone); returns the labels that were present. */
  clearCamera(cameraId: string): ObjectLabel[] {
    const labels = this.#tracks.get(cameraId);
    this.#tracks.delete(cameraId);
    return labels === undefined ? [] : [...labels.keys()];
  }

  /** Forgets every camera and label `keep` does not name (a camera removed, objects turned off, a label no longer tracked). */
  retain(keep: (cameraId: string, label: ObjectLabel) => boolean): void {
    for (const [cameraId, labels] of this.#tracks) {
      for (const label of labels.keys()) if (!keep(cameraId, label)) labels.delete(label);
      if (labels.size === 0) this.#tracks.delete(cameraId);
    }
  }
}
