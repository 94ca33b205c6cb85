import { boxArea, intersection, iou, type Box } from '../box.js';

/** One detection as the object net reports it: a COCO class index (0 = person), its score and its box. */
export interface Detection {
  classIndex: number;
  score: number;
  box: Box;
}

/** Two boxes of one family overlapping at least this much (IoU) are one object: the usual COCO value. */
export const DUPLICATE_IOU = 0.5;

export interface SuppressOptions<D extends Detection = Detection> {
  /**
   * Which detections may be duplicates of each other: the same family. Default: the class itself. The
   * object net passes the label group (person, vehicle, animal; any other class on its own), so one car
   * that CenterNet also scores as a truck is one vehicle, while a person on a bicycle stays two objects.
   */
  familyOf?: (classIndex: number) => string;
  /** IoU at or above which two detections of one family are one object (default DUPLICATE_IOU). */
  iou?: number;
  /**
   * Also one object: a box that lies mostly (this fraction of its own area, e.g. 0.8) inside a better one
   * of its family, when `truncated(d)` says the smaller box was cut by the edge of what the net saw — a
   * person at a crop's border seen whole in a neighbouring crop. Off when undefined.
   */
  containment?: { fraction: number; truncated: (d: D) => boolean };
}

/**
 * Greedy non-maximum suppression: best score first, a detection is kept unless a kept one of its family
 * already covers it. In plain JavaScript: the net answers at most 100 boxes per call, far fewer above the
 * score floor, so the quadratic loop costs microseconds and needs no tensors.
 */
export function suppressDuplicates<D extends Detection>(detections: readonly D[], options: SuppressOptions<D> = {}): D[] {
  const familyOf = options.familyOf ?? ((c: number) => String(c));
  const limit = options.iou ?? DUPLICATE_IOU;
  const sorted = [...detections].sort((a, b) => b.score - a.score);
  const kept: Array<{ d: D; family: string }> = [];
  for (const d of sorted) {
    const family = familyOf(d.classIndex);
    const duplicate = kept.some((k) => {
      if (k.family !== family) return false;
      if (iou(k.d.box, d.box) >= limit) return true;
      const c = options.containment;
      if (c === undefined || !c.truncated(d)) return false;
      const overlap = intersection(k.d.box, d.box);
      return overlap !== undefined && boxArea(overlap) >= c.fraction * boxArea(d.box);
    });
    if (!duplicate) kept.push({ d, family });
  }
  return kept.map((k) => k.d);
}
