import type Database from 'better-sqlite3';
import { cameraSchema, type CameraConfig } from '../config/schema.js';
import { decryptToBuffer } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import { migrate } from '../store/database.js';

const STEPS = [
  `CREATE TABLE control_cameras (camera_id TEXT PRIMARY KEY, definition TEXT NOT NULL, sealed_password BLOB, updated_at INTEGER NOT NULL) STRICT`,
];

/**
 * Cameras the household added from the app (`cameras/add`), kept in the hub's database so they survive
 * restarts. The definition holds no secret (the config schema refuses credentials in URLs and plain
 * passwords); the camera's password, when there is one, is kept as the app sent it: sealed with age to the
 * hub's own recipient, opened only at the moment the camera connects.
 */
export class CameraRegistry {
  readonly #db: Database.Database;
  readonly #hubIdentity: string;

  constructor(db: Database.Database, hubIdentity: string) {
    this.#db = db;
    this.#hubIdentity = hubIdentity;
    migrate(db, 'control-cameras', STEPS);
  }

  /**
   * The stored cameras, validated again on the way out. A damaged or no longer valid row is left out and
   * reported through `onInvalid` (never half-used), so one bad camera cannot keep the hub from starting.
   */
  list(onInvalid?: (cameraId: string, reason: string) => void): CameraConfig[] {
    const rows = this.#db.prepare('SELECT camera_id, definition FROM control_cameras ORDER BY camera_id').all() as Array<{ camera_id: string; definition: string }>;
    const cameras: CameraConfig[] = [];
    for (const row of rows) {
      let raw: unknown;
      try {
        raw = JSON.parse(row.definition);
      } catch {
        onInvalid?.(row.camera_id, 'its stored definition is not JSON');
        continue;
      }
      const parsed = cameraSchema.safeParse(raw);
      if (parsed.success) cameras.push(parsed.data);
      else onInvalid?.(row.camera_id, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    }
    return cameras;
  }

  has(cameraId: string): boolean {
    return this.#db.prepare('SELECT 1 FROM control_cameras WHERE camera_id = ?').get(cameraId) !== undefined;
  }

  /** Adds or replaces a camera; `sealedPassword` undefined keeps the stored one, null removes it. */
  put(camera: CameraConfig, sealedPassword: Buffer | null | undefined, now = Date.now()): void {
    const definition = JSON.stringify(camera);
    if (sealedPassword === undefined && this.has(camera.id)) {
      this.#db.prepare('UPDATE control_cameras SET definition = ?, updated_at = ? WHERE camera_id = ?').run(definition, now, camera.id);
    } else {
      this.#db
        .prepare('INSERT OR REPLACE INTO control_cameras (camera_id, definition, sealed_password, updated_at) VALUES (?, ?, ?, ?)')
        .run(camera.id, definition, sealedPassword ?? null, now);
    }
  }

  remove(cameraId: string): boolean {
    return this.#db.prepare('DELETE FROM control_cameras WHERE camera_id = ?').run(cameraId).changes === 1;
  }

  /** The camera's password, opened now with the hub identity and not kept; undefined when none is stored. */
  async password(cameraId: string): Promise<string | undefined> {
    const row = this.#db.prepare('SELECT sealed_password FROM control_cameras WHERE camera_id = ?').get(cameraId) as { sealed_password: Buffer | null } | undefined;
    if (row?.sealed_password == null) return undefined;
    try {
      return (await decryptToBuffer(this.#hubIdentity, row.sealed_password)).toString('utf8');
    } catch {
      throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `camera ${cameraId}: the stored password cannot be opened with the hub key`, { where: cameraId });
    }
  }
}
