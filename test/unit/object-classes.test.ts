import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  COCO_CLASSES,
  DEFAULT_MIN_SCORE,
  DEFAULT_TRACK,
  LABEL_CLASSES,
  TRACK_NAMES,
  classesOf,
  isTrackName,
  labelOf,
  resolveTrack,
  trackNameSchema,
} from '../../src/analysis/objects/object-classes.js';
import { OBJECT_LABELS } from '../../src/policy/vocabulary.js';

/** The model package's own list (1-based `class`, indexed 0-based by its decoder). */
function packageLabels(): string[] {
  // The package exports no package.json to resolve: read it where npm installs it.
  const text = readFileSync(new URL('../../node_modules/@vladmandic/human/src/object/labels.ts', import.meta.url), 'utf8');
  return [...text.matchAll(/\{ class: (\d+), label: '([^']+)' \}/g)].map((m, i) => {
    expect(Number(m[1])).toBe(i + 1);
    return m[2]!;
  });
}

describe('object classes', () => {
  it('lists the 80 COCO classes in the model package order', () => {
    expect(COCO_CLASSES).toHaveLength(80);
    expect(COCO_CLASSES[0]).toBe('person');
    expect(COCO_CLASSES[79]).toBe('toothbrush');
    expect([...COCO_CLASSES]).toEqual(packageLabels());
  });

  it('groups person, animal and vehicle classes, every one a COCO class, none in two groups', () => {
    expect(LABEL_CLASSES.vehicle).toEqual(['bicycle', 'car', 'motorcycle', 'bus', 'truck']);
    expect(LABEL_CLASSES.animal).toEqual(['bird', 'cat', 'dog', 'horse', 'sheep', 'cow']);
    expect(LABEL_CLASSES.person).toEqual(['person']);
    const all = OBJECT_LABELS.flatMap((l) => LABEL_CLASSES[l]);
    expect(new Set(all).size).toBe(all.length);
    for (const c of all) expect(COCO_CLASSES).toContain(c);
  });

  it('labels a class by its group, and classes outside the groups not at all', () => {
    expect(labelOf('truck')).toBe('vehicle');
    expect(labelOf('cow')).toBe('animal');
    expect(labelOf('person')).toBe('person');
    expect(labelOf('umbrella')).toBeUndefined();
    expect(labelOf('Person')).toBeUndefined();
  });

  it('resolves a track list to COCO classes: groups expand, classes stay, unknown names add nothing', () => {
    expect([...resolveTrack(DEFAULT_TRACK)].sort()).toEqual(OBJECT_LABELS.flatMap((l) => LABEL_CLASSES[l]).sort());
    expect([...resolveTrack(['person', 'car'])].sort()).toEqual(['car', 'person']);
    expect([...resolveTrack(['vehicle', 'car'])].sort()).toEqual([...LABEL_CLASSES.vehicle].sort());
    expect(resolveTrack([]).size).toBe(0);
    expect(resolveTrack(['umbrella']).size).toBe(0);
    expect(classesOf('animal')).toBe(LABEL_CLASSES.animal);
  });

  it('accepts the group labels and their classes only', () => {
    expect(TRACK_NAMES).toHaveLength(3 + 12);
    for (const name of TRACK_NAMES) expect(isTrackName(name)).toBe(true);
    expect(isTrackName('umbrella')).toBe(false);
    expect(isTrackName('people')).toBe(false);
    expect(DEFAULT_MIN_SCORE).toBeGreaterThan(0);
    expect(DEFAULT_MIN_SCORE).toBeLessThan(1);
  });

  it('refuses an unknown name with a message listing the valid ones', () => {
    const schema = z.array(trackNameSchema);
    expect(schema.parse(['person', 'dog'])).toEqual(['person', 'dog']);
    const typo = schema.safeParse(['persn']);
    expect(typo.success).toBe(false);
    const message = typo.error!.issues[0]!.message;
    expect(message).toContain('unknown object class "persn"');
    for (const name of TRACK_NAMES) expect(message).toContain(name);
    const outside = schema.safeParse(['person', 'umbrella']);
    expect(outside.error!.issues[0]!.path).toEqual([1]);
    expect(outside.error!.issues[0]!.message).toContain('"umbrella" is a COCO class outside');
  });
});
