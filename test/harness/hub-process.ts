import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

/** `bin/camveil.js`, run with this Node: the hub as its own process, as systemd would start it. */
export const CAMVEIL_BIN = fileURLToPath(new URL('../../bin/camveil.js', import.meta.url));

/** Runs a `camveil` command to its end; resolves with its exit code and its stdout and stderr together. */
export function runCamveil(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CAMVEIL_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env === undefined ? {} : { env }) });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('close', (code) => resolve({ code, out }));
  });
}

/**
 * Runs a `camveil` command to its end; resolves with its exit code, stdout and stderr apart. Killed, and the
 * promise rejected with what it printed, when it runs past `timeoutMs` (a command that should end, hanging).
 */
export function camveilCli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CAMVEIL_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`camveil ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface HubProcess {
  child: ChildProcess;
  pid: number;
  /** Everything it has logged so far (pino JSON lines, stdout and stderr). */
  log(): string;
  /** The parsed JSON log lines so far (lines that are not JSON are left out). */
  lines(): Array<Record<string, unknown>>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** SIGTERM and the exit code (SIGKILL after `timeoutMs`, then resolves null). */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Starts `camveil run --config <config>`; resolves once the gateway has started (its log says so). */
export async function startHub(config: string, options: { env?: NodeJS.ProcessEnv; startedWhen?: string } = {}): Promise<HubProcess> {
  const child = spawn(process.execPath, [CAMVEIL_BIN, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const marker = options.startedWhen ?? 'gateway starting';
  await waitFor('the hub to start', () => log.includes(marker) || child.exitCode !== null, 60_000);
  if (child.exitCode !== null) throw new Error(`camveil run exited ${child.exitCode}: ${log}`);
  return {
    child,
    pid: child.pid!,
    log: () => log,
    lines: () =>
      log.split('\n').flatMap((line): Array<Record<string, unknown>> => {
        try {
          const parsed = JSON.parse(line) as unknown;
          return typeof parsed === 'object' && parsed !== null ? [parsed as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      }),
    exited,
    stop: async (timeoutMs = 30_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

const FAKETIME_LIBS = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'];

/** Debian's libfaketime (package `faketime`), if installed. */
export function faketimeLibrary(): string | undefined {
  return FAKETIME_LIBS.find((p) => existsSync(p));
}

/**
 * A wall clock a test can step while the process runs, as NTP or a person setting the time would: libfaketime
 * preloaded, reading its offset from `file` at every call (`FAKETIME_NO_CACHE`), and leaving the monotonic
 * clock alone (`DONT_FAKE_MONOTONIC`), as a real step does. Node's `Date.now()` follows the file; its timers and
 * `performance.now()` do not. The hub's children (ffmpeg) inherit it, as they share a real machine's clock.
 */
export class SteppedClock {
  readonly file: string;
  #offsetSeconds = 0;

  constructor(file: string) {
    this.file = file;
    writeFileSync(file, '+0\n');
  }

  /** The environment that runs a process on this clock. */
  env(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    const lib = faketimeLibrary();
    if (lib === undefined) throw new Error('libfaketime is not installed (Debian package faketime)');
    return { ...base, LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: this.file, FAKETIME_NO_CACHE: '1', DONT_FAKE_MONOTONIC: '1' };
  }

  /** Sets the clock `seconds` away from the real time (0: back to it). */
  set(seconds: number): void {
    this.#offsetSeconds = seconds;
    // Renamed into place: libfaketime re-opens the file at every call and must never read half of it.
    writeFileSync(`${this.file}.new`, `${seconds >= 0 ? '+' : ''}${seconds}\n`);
    renameSync(`${this.file}.new`, this.file);
  }

  /** The offset now, in milliseconds. */
  get offsetMs(): number {
    return this.#offsetSeconds * 1000;
  }
}
