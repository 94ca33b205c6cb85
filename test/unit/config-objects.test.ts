import { describe, expect, it } from 'vitest';
import { DEFAULT_MIN_SCORE, TRACK_NAMES } from '../../src/analysis/objects/object-classes.js';
import { validateConfig } from '../../src/config/load.js';
import { cameraSchema } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

const base = { hub: { id: 'home', region: 'DE' } };
const camera = (extra: Record<string, unknown> = {}) => ({ id: 'front', source: 'rtsp://10.0.0.2:88/videoMain', ...extra });
const drive = [[0, 0.6], [0.5, 0.6], [0.5, 1], [0, 1]];

function issuesOf(cam: Record<string, unknown>): string[] {
  try {
    validateConfig({ ...base, cameras: [cam] }, 'test.yaml', '/etc/camveil');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).issues];
  }
  throw new Error('expected the config to be rejected');
}

describe('camera objects and alerts config', () => {
  it('defaults to every group, the shipped threshold, no zones, and every event alerting', () => {
    const c = validateConfig({ ...base, cameras: [camera()] }, 'x', '/etc/camveil');
    expect(c.cameras[0]?.objects).toEqual({ enabled: true, track: ['person', 'vehicle', 'animal'], minScore: DEFAULT_MIN_SCORE, minArea: 0.0005, zones: {} });
    expect(c.cameras[0]?.alerts).toEqual({ onlyFor: [] });
  });

  it('accepts groups, classes of groups, zones per tracked name and onlyFor of tracked labels', () => {
    const c = validateConfig(
      { ...base, cameras: [camera({ objects: { track: ['person', 'car', 'dog'], minScore: 0.6, minArea: 0.01, zones: { car: [drive], person: [drive] } }, alerts: { onlyFor: ['person', 'vehicle'] } })] },
      'x',
      '/etc/camveil',
    );
    expect(c.cameras[0]?.objects.track).toEqual(['person', 'car', 'dog']);
    expect(c.cameras[0]?.objects.zones.car).toEqual([drive]);
    expect(c.cameras[0]?.alerts.onlyFor).toEqual(['person', 'vehicle']);
  });

  it('refuses an unknown class, listing the valid names', () => {
    const [issue, ...rest] = issuesOf(camera({ objects: { track: ['person', 'persn'] } }));
    expect(rest).toEqual([]);
    expect(issue).toMatch(/^cameras\[0\]\.objects\.track\[1\]: unknown object class "persn"; valid: /);
    for (const name of TRACK_NAMES) expect(issue).toContain(name);
  });

  it('refuses a COCO class outside the groups, saying why', () => {
    expect(issuesOf(camera({ objects: { track: ['umbrella'] } })).join('\n')).toContain('"umbrella" is a COCO class outside camveil\'s groups');
  });

  it('refuses an empty track list (objects.enabled false is how to track nothing)', () => {
    expect(issuesOf(camera({ objects: { track: [] } })).join('\n')).toContain('objects.enabled to false');
  });

  it('refuses zones for unknown or untracked names, and empty zone lists', () => {
    expect(issuesOf(camera({ objects: { zones: { boat: [drive] } } })).join('\n')).toMatch(/objects\.zones\.boat: "boat" is a COCO class outside/);
    expect(issuesOf(camera({ objects: { track: ['person'], zones: { car: [drive] } } })).join('\n')).toMatch(/objects\.zones\.car: "car" is not tracked/);
    expect(issuesOf(camera({ objects: { zones: { person: [] } } })).join('\n')).toMatch(/objects\.zones\.person: give at least one polygon/);
    expect(issuesOf(camera({ objects: { zones: { person: [[[0, 0], [2, 0], [1, 1]]] } } })).join('\n')).toMatch(/objects\.zones\.person\[0\]\[1\]\[0\]/);
  });

  it('refuses scores and areas outside 0..1 and unknown keys', () => {
    expect(issuesOf(camera({ objects: { minScore: 1.5 } }))[0]).toMatch(/^cameras\[0\]\.objects\.minScore/);
    expect(issuesOf(camera({ objects: { minArea: -0.1 } }))[0]).toMatch(/^cameras\[0\]\.objects\.minArea/);
    expect(issuesOf(camera({ objects: { labels: ['person'] } }))[0]).toMatch(/^cameras\[0\]\.objects/);
  });

  it('refuses an onlyFor that could never pass: unknown labels, objects off, labels not tracked', () => {
    expect(issuesOf(camera({ alerts: { onlyFor: ['car'] } }))[0]).toMatch(/^cameras\[0\]\.alerts\.onlyFor\[0\]/);
    expect(issuesOf(camera({ objects: { enabled: false }, alerts: { onlyFor: ['person'] } })).join('\n')).toMatch(/alerts\.onlyFor: needs objects\.enabled/);
    expect(issuesOf(camera({ objects: { track: ['person'] }, alerts: { onlyFor: ['person', 'animal'] } })).join('\n')).toMatch(/alerts\.onlyFor: "animal" is not in objects\.track/);
    // a single class of the group is enough for the group's label
    expect(cameraSchema.parse(camera({ objects: { track: ['cat'] }, alerts: { onlyFor: ['animal'] } })).alerts.onlyFor).toEqual(['animal']);
  });

  it('checks cameras the app adds the same way (cameraSchema alone)', () => {
    expect(cameraSchema.safeParse(camera({ objects: { enabled: false }, alerts: { onlyFor: ['person'] } })).success).toBe(false);
    expect(cameraSchema.safeParse(camera({ objects: { track: ['giraffe'] } })).success).toBe(false);
  });
});
