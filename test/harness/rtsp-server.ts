import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SYSTEM_PYTHON } from './system-python.js';

const SCRIPT = fileURLToPath(new URL('./rtsp_server.py', import.meta.url));

export interface RtspServerOptions {
  /** An H.264 MP4 played in real time from its start for each client. */
  file?: string;
  /** A live test pattern, encoded as it plays (never ends). */
  live?: { width: number; height: number; fps: number };
  /** Default `/stream`. */
  mountPath?: string;
  /** Default: an ephemeral port. Pass the old port to restart a server where clients expect it. */
  port?: number;
  /** Require authentication: basic (default) or digest. */
  auth?: { user: string; password: string; method?: 'basic' | 'digest' };
}

export interface RtspServer {
  /** `rtsp://127.0.0.1:port/mount`, without credentials. */
  url: string;
  port: number;
  /** Ends the server (SIGTERM) and waits for the process to exit. */
  stop(): Promise<void>;
  /** Kills the server at once (SIGKILL), as a camera losing power would. */
  kill(): void;
  /** Freezes the server (SIGSTOP): connections stay open and accept, nothing answers, as a hung camera. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
}

/** Starts GStreamer's RTSP server (test/harness/rtsp_server.py) on 127.0.0.1 and waits until it listens. */
export async function startRtspServer(options: RtspServerOptions): Promise<RtspServer> {
  const mount = options.mountPath ?? '/stream';
  const args = [SCRIPT, '--port', String(options.port ?? 0), '--mount', mount];
  if (options.file !== undefined) args.push('--file', options.file);
  else if (options.live !== undefined) args.push('--live', `${options.live.width}x${options.live.height}@${options.live.fps}`);
  else throw new Error('startRtspServer: give file or live');
  if (options.auth !== undefined) {
    // The password goes on stdin: tests scan every child's argv for it.
    args.push('--user', options.auth.user);
    if (options.auth.method === 'digest') args.push('--digest');
  }

  const child: ChildProcess = spawn(SYSTEM_PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin?.end(options.auth === undefined ? '' : `${options.auth.password}\n`);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`RTSP server did not start in 10 s: ${stderr}`)), 10_000);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      clearTimeout(timer);
      const msg = JSON.parse(line) as { port?: number; error?: string };
      if (msg.port === undefined) reject(new Error(`RTSP server failed: ${msg.error ?? line} ${stderr}`));
      else resolve(msg.port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`RTSP server exited with ${code}: ${stderr}`));
    });
  });

  return {
    url: `rtsp://127.0.0.1:${port}${mount}`,
    port,
    exited,
    kill: () => {
      child.kill('SIGKILL');
    },
    pause: () => {
      child.kill('SIGSTOP');
    },
    resume: () => {
      child.kill('SIGCONT');
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // A paused server would not act on SIGTERM until thawed.
        child.kill('SIGCONT');
        child.kill('SIGTERM');
      }
      await exited;
    },
  };
}
