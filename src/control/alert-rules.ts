import type { AlertKind, ObjectLabel } from '../policy/vocabulary.js';

/**
 * A camera's `alerts.onlyFor` (config/schema.ts): when it names labels, the camera alerts only for objects
 * of those labels. Its `motion` alert is not sent (the event is still recorded and uploaded as the household
 * chose: only the alert is left out), nor are `object` alerts of other labels. Face alerts follow their own
 * switch (the camera's `faceRecognition`, and the gate) and a face implies a person, so they pass; so does
 * `camera-offline`, which says nothing about what is in front of the camera. Empty: every alert, as before.
 */
export function passesOnlyFor(onlyFor: readonly ObjectLabel[], kind: AlertKind, label?: ObjectLabel): boolean {
  if (onlyFor.length === 0) return true;
  switch (kind) {
    case 'motion':
      return false;
    case 'object':
      return label !== undefined && onlyFor.includes(label);
    case 'known-face':
    case 'unknown-face':
    case 'camera-offline':
      return true;
  }
}
