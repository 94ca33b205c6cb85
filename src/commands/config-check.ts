import { loadConfigFile } from '../config/load.js';
import { CamveilError, ConfigError, exitCodeFor } from '../errors.js';
import type { CommandIO } from './io.js';

/**
 * `camveil config check FILE`: exit 0 when valid; exit 2 with every problem as `path: reason`.
 * Prints a short summary of what the file configures (no secrets: password files are named, not read).
 */
export function runConfigCheck(file: string, io: CommandIO): number {
  try {
    const config = loadConfigFile(file);
    io.stdout(`${file}: valid`);
    io.stdout(`  hub ${config.hub.id} in region ${config.hub.region}, data in ${config.dataDir}`);
    io.stdout(`  ${config.cameras.length} camera(s): ${config.cameras.map((c) => c.id).join(', ') || '(none)'}`);
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr(`${file}: invalid (${error.issues.length} problem${error.issues.length === 1 ? '' : 's'})`);
      for (const issue of error.issues) io.stderr(`  ${issue}`);
      return 2;
    }
    if (error instanceof CamveilError) {
      io.stderr(`${error.code}: ${error.message}`);
      return exitCodeFor(error);
    }
    throw error;
  }
}
