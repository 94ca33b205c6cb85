import { Command, CommanderError, Option } from 'commander';
import { registerApp } from './cli/app.js';
import { registerAudit } from './cli/audit.js';
import { registerConfig } from './cli/config.js';
import { registerConsent } from './cli/consent.js';
import { registerData } from './cli/data.js';
import { registerDemo } from './cli/demo.js';
import { registerDiscover } from './cli/discover.js';
import { registerFaces } from './cli/faces.js';
import { registerKeygen } from './cli/keygen.js';
import { registerObjects } from './cli/objects.js';
import { registerOpen } from './cli/open.js';
import type { CliContext, GlobalOptions, RegisterCommand } from './cli/options.js';
import { registerPair } from './cli/pair.js';
import { registerProbe } from './cli/probe.js';
import { registerReceiver } from './cli/receiver.js';
import { registerRun } from './cli/run.js';
import { processIO, type CommandIO } from './commands/io.js';
import { asCamveilError, exitCodeFor } from './errors.js';
import { LOG_LEVELS } from './log.js';

/** The commands, in the order `camveil --help` lists them; each file under src/cli/ declares one. */
const COMMANDS: readonly RegisterCommand[] = [
  registerRun,
  registerDemo,
  registerConfig,
  registerProbe,
  registerDiscover,
  registerKeygen,
  registerConsent,
  registerFaces,
  registerObjects,
  registerPair,
  registerApp,
  registerData,
  registerAudit,
  registerOpen,
  registerReceiver,
];

/**
 * Builds the `camveil` command line. Each action loads its module lazily so that, say, `config check`
 * does not start TensorFlow or open sockets. Actions return an exit code; nothing here holds logic.
 */
export function buildProgram(io: CommandIO, setExitCode: (code: number) => void): Command {
  const program = new Command('camveil')
    .description('Camera-side privacy gateway: motion clips and faces stay on the hub unless encrypted and allowed.')
    .version('0.1.0')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .option('--pretty', 'human-readable logs instead of JSON lines')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .exitOverride();

  const ctx: CliContext = {
    io,
    globals: () => program.opts<GlobalOptions>(),
    run: async (command) => setExitCode(await command()),
  };
  for (const register of COMMANDS) register(program, ctx);
  return program;
}

/** Runs the CLI and returns the process exit code (2: bad usage or config; 1: failure). */
export async function runCli(argv: readonly string[], io: CommandIO = processIO): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => (exitCode = code));
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      return error.exitCode === 0 ? 0 : 2;
    }
    const e = asCamveilError(error);
    io.stderr(`camveil: ${e.code}: ${e.message}`);
    return exitCodeFor(e);
  }
}
