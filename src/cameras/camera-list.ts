import type Database from 'better-sqlite3';
import { LiveConfig } from '../config/live-config.js';
import type { Config } from '../config/schema.js';
import { CameraRegistry } from '../control/camera-registry.js';
import type { Logger } from '../log.js';

/**
 * The cameras of a hub database: the configuration file's and those the household added from the app
 * (sealed to the hub key in CameraRegistry; the file wins on an id clash). The service and the console
 * both start from here, so they see the same cameras.
 */
export function openCameraList(db: Database.Database, file: Config, hubIdentity: string, logger: Logger): { live: LiveConfig; registry: CameraRegistry } {
  const registry = new CameraRegistry(db, hubIdentity);
  const fileIds = new Set(file.cameras.map((c) => c.id));
  const appCameras = registry
    .list((id, reason) => logger.error({ camera: id, code: 'CAMVEIL_E_CONFIG_INVALID', reason }, `app-managed camera ${id} left out: ${reason}`))
    .filter((c) => !fileIds.has(c.id));
  return { live: new LiveConfig(file, appCameras), registry };
}
