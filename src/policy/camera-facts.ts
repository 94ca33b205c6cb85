import type Database from 'better-sqlite3';
import { DEFAULT_CAPABLE_MODELS, DEFAULT_MIN_FACE_STREAM, isFaceCapable, type CapableModel, type DeviceModelFacts, type FaceCapabilityReason } from './device-rules.js';

/** A camera as the facts need it: its id and the household's face switch for it. */
export interface CameraSwitch {
  id: string;
  faceRecognition: boolean;
}

export interface CameraFactsOptions {
  /** The hub's database: what cameras said about themselves is kept there, so the console sees what the service saw. */
  db: Database.Database;
  /** The cameras that exist now (the configuration file's and the app-managed ones), read at every question. */
  cameras: () => readonly CameraSwitch[];
  /** `privacy.faceCapableModels` and `privacy.faceCapableOverride`, read at every question. */
  privacy: () => { faceCapableModels?: readonly CapableModel[] | undefined; faceCapableOverride: boolean };
}

/** A face-capability answer; `reason` as device-rules.ts gives it. */
export interface FaceCapability {
  capable: boolean;
  reason: FaceCapabilityReason;
}

interface Observation {
  manufacturer?: string;
  model?: string;
  width?: number;
  height?: number;
}

interface Row {
  camera_id: string;
  manufacturer: string | null;
  model: string | null;
  width: number | null;
  height: number | null;
}

/** Only the model and the stream size are kept: serial numbers and MACs identify one device and are never stored here. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS policy_camera_facts (
  camera_id TEXT PRIMARY KEY,
  manufacturer TEXT,
  model TEXT,
  width INTEGER,
  height INTEGER,
  observed_at TEXT NOT NULL
) STRICT;
`;

/**
 * Per-camera facts the gate decides face questions on: the household's switch for the camera, and whether
 * the device is face-capable (its model, the size of the stream it delivers, the household's override;
 * device-rules.ts). The one answer for the service and the console: the service records what a camera
 * reports when its source is resolved, and both read the same records from the hub's database. A camera
 * never identified is judged on the override alone (its stream size is unknown, which fails safe).
 */
export class CameraFacts {
  readonly #o: CameraFactsOptions;
  #observed: Map<string, Observation> | undefined;

  constructor(options: CameraFactsOptions) {
    this.#o = options;
  }

  /** Whether the device of `cameraId` is face-capable now, and why (consent and region are the gate's). */
  capability(cameraId: string): FaceCapability {
    const p = this.#o.privacy();
    const opts = { capableModels: p.faceCapableModels ?? DEFAULT_CAPABLE_MODELS, ...DEFAULT_MIN_FACE_STREAM, householdOverride: p.faceCapableOverride };
    const seen = this.#observations().get(cameraId) ?? {};
    const facts: DeviceModelFacts = { ...(seen.manufacturer === undefined ? {} : { manufacturer: seen.manufacturer }), ...(seen.model === undefined ? {} : { model: seen.model }) };
    if (seen.width !== undefined && seen.height !== undefined) return isFaceCapable(facts, seen.width, seen.height, opts);
    // Plain RTSP and file sources report no size: only the household, vouching for the camera, makes it capable.
    if (!opts.householdOverride) return { capable: false, reason: 'stream-too-small' };
    return isFaceCapable(facts, opts.minWidth, opts.minHeight, opts);
  }

  /** What the gate is told per camera: the household's switch and the device's capability. */
  forGate(): ReadonlyMap<string, { faceRecognitionEnabled: boolean; faceCapable: boolean }> {
    return new Map(this.#o.cameras().map((c) => [c.id, { faceRecognitionEnabled: c.faceRecognition, faceCapable: this.capability(c.id).capable }]));
  }

  /**
   * Records what a camera said about itself when its source was resolved (ONVIF: model and main stream
   * size; nothing for plain RTSP). Returns the capability before and after, so the caller can log a change.
   */
  observe(cameraId: string, facts: DeviceModelFacts | undefined, size: { width: number; height: number } | undefined): { before: FaceCapability; after: FaceCapability } {
    const before = this.capability(cameraId);
    const seen: Observation = {
      ...(facts?.manufacturer === undefined ? {} : { manufacturer: facts.manufacturer }),
      ...(facts?.model === undefined ? {} : { model: facts.model }),
      ...(size === undefined ? {} : { width: size.width, height: size.height }),
    };
    this.#observations().set(cameraId, seen);
    this.#o.db
      .prepare(
        `INSERT INTO policy_camera_facts (camera_id, manufacturer, model, width, height, observed_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (camera_id) DO UPDATE SET manufacturer = excluded.manufacturer, model = excluded.model, width = excluded.width, height = excluded.height, observed_at = excluded.observed_at`,
      )
      .run(cameraId, seen.manufacturer ?? null, seen.model ?? null, seen.width ?? null, seen.height ?? null, new Date().toISOString());
    return { before, after: this.capability(cameraId) };
  }

  /** A removed camera's facts go with it: an id reused later is judged afresh. */
  forget(cameraId: string): void {
    this.#observations().delete(cameraId);
    this.#o.db.prepare('DELETE FROM policy_camera_facts WHERE camera_id = ?').run(cameraId);
  }

  /** Read once from the database (the gate asks on every frame), then kept in step by observe and forget. */
  #observations(): Map<string, Observation> {
    if (this.#observed !== undefined) return this.#observed;
    this.#o.db.exec(SCHEMA);
    const rows = this.#o.db.prepare<[], Row>('SELECT camera_id, manufacturer, model, width, height FROM policy_camera_facts').all();
    this.#observed = new Map(
      rows.map((r) => [
        r.camera_id,
        {
          ...(r.manufacturer === null ? {} : { manufacturer: r.manufacturer }),
          ...(r.model === null ? {} : { model: r.model }),
          ...(r.width === null || r.height === null ? {} : { width: r.width, height: r.height }),
        },
      ]),
    );
    return this.#observed;
  }
}
