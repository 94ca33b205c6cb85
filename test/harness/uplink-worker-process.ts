import { spawn } from 'node:child_process';
import { join } from 'node:path';

export interface UplinkWorkerProcess {
  exited: Promise<number | null>;
  /** Everything it printed (stdout and stderr) so far. */
  output: () => string;
  /** SIGKILL, as a hub losing power. */
  kill: () => void;
}

/**
 * Starts test/harness/uplink-worker.ts (an Uploader in its own process) with `options`; `defer` is given
 * the cleanup that kills it if it is still running when the test ends.
 */
export function spawnUplinkWorker(options: object, defer: (cleanup: () => void) => void): UplinkWorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/harness/uplink-worker.ts', JSON.stringify(options)], {
    cwd: join(import.meta.dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  defer(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { exited, output: () => out, kill: () => child.kill('SIGKILL') };
}
