import { LABEL_CLASSES, resolveTrack } from '../analysis/objects/object-classes.js';
import type { CameraConfig } from '../config/schema.js';
import { OBJECT_LABELS, type ObjectLabel } from '../policy/vocabulary.js';

/** What the control side reads of a camera's config for objects: its `objects` and `alerts` settings. */
export type CameraObjectSettings = Pick<CameraConfig, 'objects' | 'alerts'>;

/**
 * The labels a camera reports while its objects analyser is on (`objects.track`: groups, or single COCO
 * classes, each standing for its group), in priority order; none when objects are off or for no camera.
 */
export function trackedLabels(camera: CameraObjectSettings | undefined): ObjectLabel[] {
  if (camera?.objects.enabled !== true) return [];
  const classes = resolveTrack(camera.objects.track);
  return OBJECT_LABELS.filter((label) => LABEL_CLASSES[label].some((cocoClass) => classes.has(cocoClass)));
}

/** The camera's `alerts.onlyFor` (empty for a camera that is gone: its alerts are not narrowed). */
export function onlyForOf(camera: CameraObjectSettings | undefined): readonly ObjectLabel[] {
  return camera?.alerts.onlyFor ?? [];
}
