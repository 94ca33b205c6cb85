import { iou, type Box } from '../src/analysis/box.js';

/**
 * Scoring object detections against labelled ground truth, the PASCAL VOC way: per class group, each
 * detection (best score first) is matched to the ground-truth box it overlaps most; at IoU ≥ 0.5 it is a
 * true positive if that box is still free, a duplicate (false positive) if it was already taken, and
 * neither when the box is marked `difficult` (tiny, mostly hidden: a miss there is not counted, nor is a
 * hit). Pure: no I/O, no model.
 */

/** The IoU at which a detection counts as finding a ground-truth box (VOC's and COCO's AP50). */
export const MATCH_IOU = 0.5;

export interface TruthBox {
  /** The class group (person, vehicle, animal) the object belongs to. */
  group: string;
  box: Box;
  /** Counted neither as found nor as missed (VOC's "difficult"): too small, cut off or hidden to ask of a detector. */
  difficult?: boolean;
}

export interface ScoredBox {
  group: string;
  score: number;
  box: Box;
}

/** One image's ground truth and what a detector reported on it (any threshold: scoring filters). */
export interface ImageDetections {
  truth: readonly TruthBox[];
  detections: readonly ScoredBox[];
}

/** One detection's outcome in the ranking: `tp` true positive, `fp` false positive. */
interface RankedOutcome {
  score: number;
  tp: boolean;
}

/**
 * Matches one image's detections of `group` to its ground truth. Returns the outcome of every detection
 * that counts (those that hit a difficult box are left out) and the number of non-difficult truth boxes.
 */
export function matchImage(image: ImageDetections, group: string, minIou: number = MATCH_IOU): { outcomes: RankedOutcome[]; positives: number } {
  const truth = image.truth.filter((t) => t.group === group);
  const taken = new Array<boolean>(truth.length).fill(false);
  const detections = image.detections.filter((d) => d.group === group).sort((a, b) => b.score - a.score);
  const outcomes: RankedOutcome[] = [];
  for (const d of detections) {
    let best = -1;
    let bestIou = 0;
    truth.forEach((t, i) => {
      const overlap = iou(d.box, t.box);
      if (overlap > bestIou) {
        bestIou = overlap;
        best = i;
      }
    });
    if (best < 0 || bestIou < minIou) {
      outcomes.push({ score: d.score, tp: false });
      continue;
    }
    if (truth[best]!.difficult === true) continue;
    if (taken[best]) {
      outcomes.push({ score: d.score, tp: false });
      continue;
    }
    taken[best] = true;
    outcomes.push({ score: d.score, tp: true });
  }
  return { outcomes, positives: truth.filter((t) => t.difficult !== true).length };
}

export interface GroupCounts {
  /** Non-difficult ground-truth objects of the group. */
  positives: number;
  truePositives: number;
  falsePositives: number;
  /** truePositives / (truePositives + falsePositives); undefined when nothing was detected. */
  precision: number | undefined;
  /** truePositives / positives; undefined when the set has none of the group. */
  recall: number | undefined;
}

/** Precision and recall of `group` counting only detections scored at least `minScore`. */
export function countsAt(images: readonly ImageDetections[], group: string, minScore: number, minIou: number = MATCH_IOU): GroupCounts {
  let positives = 0;
  let truePositives = 0;
  let falsePositives = 0;
  for (const image of images) {
    const kept = { truth: image.truth, detections: image.detections.filter((d) => d.score >= minScore) };
    const m = matchImage(kept, group, minIou);
    positives += m.positives;
    for (const o of m.outcomes) {
      if (o.tp) truePositives += 1;
      else falsePositives += 1;
    }
  }
  const detected = truePositives + falsePositives;
  return {
    positives,
    truePositives,
    falsePositives,
    precision: detected === 0 ? undefined : truePositives / detected,
    recall: positives === 0 ? undefined : truePositives / positives,
  };
}

/**
 * Average precision at IoU 0.5 for `group`, all-point interpolated (VOC 2010 on): the detections of every
 * image ranked by score, the precision at each rank made non-increasing from the right, and the area
 * under that precision/recall curve. Undefined when the set holds no object of the group; 0 when it does
 * and nothing was found.
 */
export function averagePrecision(images: readonly ImageDetections[], group: string, minIou: number = MATCH_IOU): number | undefined {
  let positives = 0;
  const ranked: RankedOutcome[] = [];
  for (const image of images) {
    const m = matchImage(image, group, minIou);
    positives += m.positives;
    ranked.push(...m.outcomes);
  }
  if (positives === 0) return undefined;
  // Ties: true positives first is the optimistic order; sort is stable, so the order found per image and
  // image order decide instead, as VOC's own code does.
  ranked.sort((a, b) => b.score - a.score);
  const recall: number[] = [];
  const precision: number[] = [];
  let tp = 0;
  ranked.forEach((o, i) => {
    if (o.tp) tp += 1;
    recall.push(tp / positives);
    precision.push(tp / (i + 1));
  });
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i]!, precision[i + 1]!);
  let ap = 0;
  let previousRecall = 0;
  for (let i = 0; i < ranked.length; i++) {
    if (recall[i]! > previousRecall) {
      ap += (recall[i]! - previousRecall) * precision[i]!;
      previousRecall = recall[i]!;
    }
  }
  return ap;
}

/**
 * The lowest score threshold (among the scores detections of `group` actually got) at which precision is
 * at least `targetPrecision`, with the recall it keeps; undefined when no threshold reaches it.
 */
export function thresholdForPrecision(
  images: readonly ImageDetections[],
  group: string,
  targetPrecision: number,
  minIou: number = MATCH_IOU,
): { minScore: number; precision: number; recall: number } | undefined {
  const scores = [...new Set(images.flatMap((i) => i.detections.filter((d) => d.group === group).map((d) => d.score)))].sort((a, b) => a - b);
  for (const s of scores) {
    const c = countsAt(images, group, s, minIou);
    if (c.precision !== undefined && c.precision >= targetPrecision) return { minScore: s, precision: c.precision, recall: c.recall ?? 0 };
  }
  return undefined;
}

export interface GroupReport extends GroupCounts {
  ap50: number | undefined;
}

/** Precision, recall (at `minScore`) and AP50 for each of `groups`. */
export function evaluate(images: readonly ImageDetections[], groups: readonly string[], minScore: number): Record<string, GroupReport> {
  const out: Record<string, GroupReport> = {};
  for (const g of groups) out[g] = { ...countsAt(images, g, minScore), ap50: averagePrecision(images, g) };
  return out;
}
