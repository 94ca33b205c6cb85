import { InvalidArgumentError, Option, type Command } from 'commander';
import type { CommandIO } from '../commands/io.js';
import type { LogLevel } from '../log.js';

/**
 * What the command-line files share: the options many commands take, declared once, and what each command
 * needs to run. The command files here only describe the command line; each action imports its command's
 * module (src/commands/) when it runs, so that, say, `config check` does not load TensorFlow or open sockets.
 */

/** Options every command understands (declared on the program in cli.ts). */
export interface GlobalOptions {
  logLevel?: LogLevel;
  pretty?: boolean;
}

/** What a command's registration is given. */
export interface CliContext {
  io: CommandIO;
  /** The global options as parsed; read them in an action, not at registration. */
  globals(): GlobalOptions;
  /** Runs a command and records the exit code it returns. */
  run(command: () => Promise<number> | number): Promise<void>;
}

/** A command file: adds its command (and subcommands) to `parent`. */
export type RegisterCommand = (parent: Command, ctx: CliContext) => void;

/** Parses a number greater than zero (seconds, counts, ports); anything else is a usage error. */
export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/** `-c, --config <file>`, required. */
export function configOption(description = 'the hub configuration file'): Option {
  return new Option('-c, --config <file>', description).makeOptionMandatory();
}

/** `--json`: one JSON document on stdout instead of text. */
export function jsonOption(): Option {
  return new Option('--json', 'print one JSON document');
}

/** `--timeout <seconds>`, a positive number. */
export function timeoutOption(description: string): Option {
  return new Option('--timeout <seconds>', description).argParser(positiveNumber);
}

/** A console command on `parent` that reads the hub's configuration (`--config`) and, with `json`, can print JSON (`--json`). */
export function consoleCommand(parent: Command, name: string, description: string, options: { json?: boolean } = {}): Command {
  const command = parent.command(name).description(description).addOption(configOption());
  return options.json === true ? command.addOption(jsonOption()) : command;
}
