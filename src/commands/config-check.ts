import { loadConfigFile } from '../config/load.js';
import { secretProblems } from '../config/secrets.js';
import { CamveilError, ConfigError, exitCodeFor } from '../errors.js';
import type { CommandIO } from './io.js';

/**
 * `camveil config check FILE`: exit 0 when valid; exit 2 with every problem as `path: reason`, the secrets
 * it names included (a password or token file that is missing, unreadable or empty, an unset variable).
 * Prints a short summary of what the file configures; secrets are read to check them, never printed.
 */
export function runConfigCheck(file: string, io: CommandIO, env: NodeJS.ProcessEnv = process.env): number {
  try {
    const config = loadConfigFile(file);
    const secrets = secretProblems(config, env);
    if (secrets.length > 0) {
      io.stderr(`${file}: CAMVEIL_E_SECRET_UNREADABLE (${secrets.length} secret${secrets.length === 1 ? '' : 's'} cannot be read)`);
      for (const problem of secrets) io.stderr(`  ${problem}`);
      return 2;
    }
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
