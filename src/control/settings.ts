import { z } from 'zod';
import type { CameraConfig, Config } from '../config/schema.js';
import { trackNameSchema } from '../analysis/objects/object-classes.js';
import { identifier, objectsSchema, onlyForProblems } from '../config/schema.js';
import { objectLabelSchema } from '../policy/vocabulary.js';
import { CamveilError } from '../errors.js';

/**
 * The settings the app may read (`config/get`) and change (`config/set`) over MQTT: geometry, sensitivity,
 * analysis rate, what objects are tracked and which alert, and retention. Never credentials, sources, recipients, uploads, endpoints, consent or face
 * recognition: those either are secrets or widen what flows, and have their own signed commands (or none).
 */
export interface CameraSettings {
  id: string;
  analysisFps: number;
  motion: { sensitivity: number; zones: Array<Array<[number, number]>> };
  privacyMasks: Array<Array<[number, number]>>;
  /** Object detection (per-label zones are the config file's). */
  objects: { enabled: boolean; track: string[]; minScore: number; minArea: number };
  alerts: { onlyFor: string[] };
}

export interface HubSettings {
  cameras: CameraSettings[];
  retentionDays: number;
}

/** What `cameras/list` says about one camera: no source, credentials or device serials. */
export interface CameraSummary {
  id: string;
  name?: string;
  enabled: boolean;
  /** `stopped` for a camera without a running pipeline (disabled, or not started yet). */
  health: string;
  error?: string;
  features: {
    motion: { enabled: boolean; active: boolean };
    /** What the gate says now (region, device model, consent), or `off` when the household has not asked for it. */
    faceRecognition: { enabled: boolean; allowed: boolean; reason: string };
    localRecording: { allowed: boolean; reason: string };
  };
}

/** The gate's answers `cameraSummaries` needs (PolicyGate has them; reads only, nothing audited). */
export interface FeatureGate {
  mayRecogniseFaces(cameraId: string): { allowed: boolean; reason: string };
  mayRecordLocally(cameraId: string): { allowed: boolean; reason: string };
}

/** The live part of a camera's status that `cameraSummaries` reads (CameraPipeline.status()). */
export interface CameraLiveStatus {
  cameraId: string;
  health: string;
  error?: { code: string };
  motion: { active: boolean };
}

/** At most this many points per polygon and polygons per list: bounded work per frame, bounded replies. */
const MAX_POINTS = 64;
const MAX_POLYGONS = 32;
const point = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]);
const polygon = z.array(point).min(3, 'a polygon needs at least 3 points').max(MAX_POINTS);
const polygons = z.array(polygon).max(MAX_POLYGONS);

/** `config/set` arguments: a partial change; bounds are the config file's own. */
export const settingsPatchSchema = z
  .strictObject({
    cameras: z
      .array(
        z.strictObject({
          id: identifier,
          analysisFps: z.number().min(0.2).max(15).optional(),
          sensitivity: z.number().min(0).max(1).optional(),
          zones: polygons.optional(),
          privacyMasks: polygons.optional(),
          objects: z
            .strictObject({
              enabled: z.boolean().optional(),
              track: z.array(trackNameSchema).min(1, 'name at least one class to track (to track nothing, set enabled to false)').max(32).optional(),
              minScore: z.number().min(0).max(1).optional(),
              minArea: z.number().min(0).max(1).optional(),
            })
            .optional(),
          alertsOnlyFor: z.array(objectLabelSchema).max(8).optional(),
        }),
      )
      .max(64)
      .optional(),
    retentionDays: z.number().min(1).max(3650).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.cameras === undefined && p.retentionDays === undefined) ctx.addIssue({ code: 'custom', message: 'nothing to change' });
    const seen = new Set<string>();
    p.cameras?.forEach((c, i) => {
      if (seen.has(c.id)) ctx.addIssue({ code: 'custom', path: ['cameras', i, 'id'], message: `camera ${c.id} is listed twice` });
      seen.add(c.id);
      if (Object.keys(c).length === 1) ctx.addIssue({ code: 'custom', path: ['cameras', i], message: 'nothing to change' });
    });
  });

export type SettingsPatch = z.output<typeof settingsPatchSchema>;

function copyPolygons(list: ReadonlyArray<ReadonlyArray<readonly [number, number]>>): Array<Array<[number, number]>> {
  return list.map((poly) => poly.map(([x, y]) => [x, y] as [number, number]));
}

/** The readable settings of `config`: a copy, so the caller cannot change the config through it. */
export function settingsOf(config: Pick<Config, 'cameras' | 'storage'>): HubSettings {
  return {
    cameras: config.cameras.map((c) => ({
      id: c.id,
      analysisFps: c.analysis.fps,
      motion: { sensitivity: c.motion.sensitivity, zones: copyPolygons(c.motion.zones) },
      privacyMasks: copyPolygons(c.privacyMasks),
      objects: { enabled: c.objects.enabled, track: [...c.objects.track], minScore: c.objects.minScore, minArea: c.objects.minArea },
      alerts: { onlyFor: [...c.alerts.onlyFor] },
    })),
    retentionDays: config.storage.retentionDays,
  };
}

/**
 * `config` with `patch` applied, as a new object (the old one is not touched). Pure: the gateway decides
 * how to make it true (restart the cameras whose settings changed, re-run retention).
 *
 * @throws CamveilError `CAMVEIL_E_REQUEST_INVALID` naming every camera id the config does not have, or a
 * camera the change would leave inconsistent (a zone for a class no longer tracked, `alertsOnlyFor` naming a
 * label objects do not report); nothing is applied.
 */
export function applySettingsPatch<C extends Pick<Config, 'cameras' | 'storage'>>(config: C, patch: SettingsPatch): C {
  const known = new Set(config.cameras.map((c) => c.id));
  const unknown = (patch.cameras ?? []).map((c) => c.id).filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `args: cameras: unknown camera id(s) ${unknown.join(', ')}`, { where: 'args' });
  }
  const changes = new Map((patch.cameras ?? []).map((c) => [c.id, c]));
  const cameras = config.cameras.map((camera): CameraConfig => {
    const change = changes.get(camera.id);
    if (change === undefined) return camera;
    return {
      ...camera,
      analysis: { ...camera.analysis, ...(change.analysisFps === undefined ? {} : { fps: change.analysisFps }) },
      motion: {
        ...camera.motion,
        ...(change.sensitivity === undefined ? {} : { sensitivity: change.sensitivity }),
        ...(change.zones === undefined ? {} : { zones: copyPolygons(change.zones) }),
      },
      ...(change.privacyMasks === undefined ? {} : { privacyMasks: copyPolygons(change.privacyMasks) }),
      ...(change.objects === undefined ? {} : { objects: objectsAfter(camera, change.objects) }),
      ...(change.alertsOnlyFor === undefined ? {} : { alerts: { ...camera.alerts, onlyFor: [...change.alertsOnlyFor] } }),
    };
  });
  for (const camera of cameras) {
    if (!changes.has(camera.id)) continue;
    const problems = onlyForProblems(camera).map((m) => `alertsOnlyFor: ${m}`);
    if (problems.length > 0) {
      throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `args: cameras: ${camera.id}: ${problems.join('; ')}`, { where: 'args' });
    }
  }
  const storage = patch.retentionDays === undefined ? config.storage : { ...config.storage, retentionDays: patch.retentionDays };
  return { ...config, cameras, storage };
}

/**
 * A camera's objects settings with a change applied, checked as the config file's are (a per-label zone
 * must stay on a tracked class).
 *
 * @throws CamveilError `CAMVEIL_E_REQUEST_INVALID` naming the camera and the problem.
 */
function objectsAfter(camera: CameraConfig, change: Partial<Pick<CameraConfig['objects'], 'enabled' | 'track' | 'minScore' | 'minArea'>>): CameraConfig['objects'] {
  const next = { ...camera.objects, ...change };
  const parsed = objectsSchema.safeParse(next);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `objects.${i.path.join('.')}: ${i.message}`);
    throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `args: cameras: ${camera.id}: ${problems.join('; ')}`, { where: 'args' });
  }
  return parsed.data;
}

/** `cameras/list`: each configured camera with its live status (when running) and what the gate allows. */
export function cameraSummaries(cameras: readonly CameraConfig[], statuses: readonly CameraLiveStatus[], gate: FeatureGate): CameraSummary[] {
  const live = new Map(statuses.map((s) => [s.cameraId, s]));
  return cameras.map((c) => {
    const status = live.get(c.id);
    const face = gate.mayRecogniseFaces(c.id);
    const recording = gate.mayRecordLocally(c.id);
    return {
      id: c.id,
      ...(c.name === undefined ? {} : { name: c.name }),
      enabled: c.enabled,
      health: status?.health ?? 'stopped',
      ...(status?.error === undefined ? {} : { error: status.error.code }),
      features: {
        motion: { enabled: c.motion.enabled, active: status?.motion.active ?? false },
        faceRecognition: c.faceRecognition ? { enabled: true, allowed: face.allowed, reason: face.reason } : { enabled: false, allowed: false, reason: 'off' },
        localRecording: { allowed: recording.allowed, reason: recording.reason },
      },
    };
  });
}
