import { z } from 'zod';
import { OBJECT_LABELS, type ObjectLabel } from '../../policy/vocabulary.js';

/**
 * What the object model can name, and which of it camveil reports. A leaf module (zod and the vocabulary
 * only, no tfjs), so the config schema, the CLI and the model worker all read the same lists.
 *
 * The model (MB3-CenterNet, shipped in the `@vladmandic/human` package) answers with an index into the
 * 80 COCO classes; camveil reports only three groups of them (OBJECT_LABELS): a person, an animal, a
 * vehicle. A camera's `objects.track` names groups or single COCO classes of those groups (`car` without
 * `truck`).
 *
 * A COCO class outside every group (`umbrella`, `chair`) is refused in `track`, with a message saying so:
 * every detection camveil reports carries a group label (events, alerts, Home Assistant sensors are per
 * label), and such a class would have none.
 */

/** The 80 COCO class names in the model's output order: index 0 is `person`, 79 is `toothbrush`. */
export const COCO_CLASSES: readonly string[] = Object.freeze([
  'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
  'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
  'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
  'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
  'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
  'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
  'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
  'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush',
]);

/** The COCO classes each reported group stands for. */
export const LABEL_CLASSES: Readonly<Record<ObjectLabel, readonly string[]>> = Object.freeze({
  person: Object.freeze(['person']),
  animal: Object.freeze(['bird', 'cat', 'dog', 'horse', 'sheep', 'cow']),
  vehicle: Object.freeze(['bicycle', 'car', 'motorcycle', 'bus', 'truck']),
});

const LABEL_OF_CLASS: ReadonlyMap<string, ObjectLabel> = new Map(
  OBJECT_LABELS.flatMap((label) => LABEL_CLASSES[label].map((cocoClass) => [cocoClass, label] as const)),
);

/** The group a COCO class belongs to, or undefined for a class camveil does not report (`umbrella`). */
export function labelOf(cocoClass: string): ObjectLabel | undefined {
  return LABEL_OF_CLASS.get(cocoClass);
}

/** What a camera tracks when its config does not say: every group. */
export const DEFAULT_TRACK: readonly string[] = Object.freeze(['person', 'vehicle', 'animal']);

/**
 * The operating threshold: a detection scoring below it is dropped. Set by the objects benchmark
 * (`npm run bench -- objects`, docs/benchmarks.md): 0.3 is the lowest threshold at which person precision
 * stays at or above 0.9 both on whole images and at camera scale (0.28 measured), and it keeps the people
 * of the face-api demo photos that score 0.3–0.4 (at 0.4, sample3 loses two of its three).
 */
export const DEFAULT_MIN_SCORE = 0.3;

/**
 * Every name `objects.track` (and the keys of `objects.zones`) accepts: the group labels first, then the
 * COCO classes of the groups in the model's order.
 */
export const TRACK_NAMES: readonly string[] = Object.freeze([
  ...OBJECT_LABELS,
  ...COCO_CLASSES.filter((cocoClass) => LABEL_OF_CLASS.has(cocoClass)),
]);

function isLabel(name: string): name is ObjectLabel {
  return (OBJECT_LABELS as readonly string[]).includes(name);
}

/** Whether `name` is a group label or a COCO class of a group. */
export function isTrackName(name: string): boolean {
  return isLabel(name) || LABEL_OF_CLASS.has(name);
}

/** The COCO classes one track name stands for (a label: its group; a class: itself; unknown: none). */
export function classesOf(name: string): readonly string[] {
  if (isLabel(name)) return LABEL_CLASSES[name];
  return LABEL_OF_CLASS.has(name) ? [name] : [];
}

/**
 * The COCO class names a `track` list stands for: groups expand to their classes, class names stay.
 * Names that are neither are ignored here; the config schema refuses them before this is called.
 */
export function resolveTrack(names: readonly string[]): ReadonlySet<string> {
  return new Set(names.flatMap((name) => classesOf(name)));
}

/** Why `name` is not a track name, naming the valid ones. */
export function unknownTrackNameMessage(name: string): string {
  const why = COCO_CLASSES.includes(name)
    ? `"${name}" is a COCO class outside camveil's groups (only people, animals and vehicles are reported)`
    : `unknown object class "${name}"`;
  return `${why}; valid: ${TRACK_NAMES.join(', ')}`;
}

/** One entry of `objects.track` or one key of `objects.zones`: a group label or a COCO class of a group. */
export const trackNameSchema = z.string().superRefine((name, ctx) => {
  if (!isTrackName(name)) ctx.addIssue({ code: 'custom', message: unknownTrackNameMessage(name) });
});
