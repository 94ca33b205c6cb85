import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { monotonicMs } from '../clock.js';
import { asCamveilError, CamveilError } from '../errors.js';
import type { CameraHealth } from '../events.js';
import type { Logger } from '../log.js';
import { Fmp4Splitter } from '../recording/fmp4.js';
import { motionGreySpec, type MotionGreySpec } from '../analysis/motion.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { buildIngestArgs, FRAMES_FD, frameBytes, MOTION_GREY_FD, type IngestInput, type MaskBox } from './ffmpeg-args.js';
import { classifyFfmpegFailure, StderrTail } from './ffmpeg-errors.js';
import { FragmentFanOut, type FragmentSubscriber, type Unsubscribe } from './fragment-fan-out.js';
import type { AnalysisFrame } from './frame.js';
import { FramePairing } from './frame-pairing.js';
import { RawFrameReader } from './raw-frame-reader.js';

/** What one connection attempt opens. Resolved again before every attempt: ONVIF URIs may change on reboot. */
export interface IngestSource {
  main: IngestInput;
  sub?: IngestInput;
}

/** The main stream's fragments go to subscribers instead ({@link CameraIngest.subscribe}). */
export interface IngestHandlers {
  onFrame(frame: AnalysisFrame): void;
  onHealth(health: CameraHealth, error?: CamveilError): void;
  /** The running stream ended: lost, or `stopped` by {@link CameraIngest.stop}. */
  onStreamEnd(stopped: boolean): void;
}

export interface CameraIngestOptions {
  cameraId: string;
  resolveSource: () => Promise<IngestSource>;
  analysis: { fps: number; width: number; height: number };
  /** Privacy masks painted into the recorded stream and the motion grey images (see buildIngestArgs). */
  maskBoxes?: readonly MaskBox[];
  /**
   * The motion detector's grey image, made by ffmpeg beside each analysis frame (AnalysisFrame.motionGrey):
   * its size and blur (MotionDetector.greySpec). By default the detector's for the analysis size
   * (motionGreySpec); `false` for none (a camera without motion detection).
   */
  motionGrey?: MotionGreySpec | false;
  ffmpeg: string;
  ffmpegMajor: number;
  handlers: IngestHandlers;
  logger: Logger;
  backoff?: BackoffOptions;
  /** No bytes from ffmpeg for this long means the stream is stalled: restart it. */
  stallTimeoutMs?: number;
  /** Socket I/O timeout passed to ffmpeg for network sources. */
  ioTimeoutSeconds?: number;
  spawn?: typeof nodeSpawn;
  /** Wall time (epoch ms) for what is reported: frame and fragment arrival, outages, `streamingSince`. */
  now?: () => number;
}

/** An interval during which the camera delivered nothing. */
export interface Outage {
  from: number;
  to?: number;
  /** The error that began the outage (a stall, a refused connection …). */
  firstCode: string;
  /** The latest retry's error: what the camera is doing now. */
  lastCode: string;
  /** The same as `lastCode` (kept for readers from before `firstCode`/`lastCode`). */
  code: string;
}

export interface IngestStats {
  health: CameraHealth;
  error?: { code: string; message: string };
  /** Connection attempts that failed or streams that were lost since start. */
  restarts: number;
  framesIn: number;
  fragmentsIn: number;
  mainBytesIn: number;
  streamingSince?: number;
  /** The most recent outages, newest last (at most 10). */
  outages: Outage[];
}

const MAX_OUTAGES = 10;
/** Frames one of ffmpeg's two raw outputs may run ahead of the other before the stream is restarted. */
const MAX_FRAMES_AHEAD = 8;

/**
 * One camera's ingest: runs its ffmpeg process, fans the main stream's fragments out to its subscribers,
 * hands analysis frames to the handlers, watches for stalls, and reconnects with backoff and jitter when
 * the stream is lost. Wrong credentials and unreachable hosts put the camera in `failed` (with the error)
 * but it keeps retrying at the slowest pace, so fixing the camera or the password brings it back without
 * a restart.
 */
export class CameraIngest {
  readonly #o: CameraIngestOptions;
  readonly #backoff: Backoff;
  readonly #now: () => number;
  #stopped = true;
  #child: ChildProcess | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #stats: IngestStats = { health: 'stopped', restarts: 0, framesIn: 0, fragmentsIn: 0, mainBytesIn: 0, outages: [] };
  #frameSeq = 0;
  readonly #fragments: FragmentFanOut;

  constructor(options: CameraIngestOptions) {
    this.#o = options;
    this.#backoff = new Backoff(options.backoff ?? { initialMs: 1000, maxMs: 60_000 });
    this.#now = options.now ?? Date.now;
    this.#fragments = new FragmentFanOut(options.cameraId, options.logger);
  }

  /**
   * Joins a taker of the main stream as fragmented MP4 (the clip recorder; a live view), at any time: one
   * that joins while a stream runs gets its init segment first. Returns how to leave.
   */
  subscribe(subscriber: FragmentSubscriber): Unsubscribe {
    return this.#fragments.subscribe(subscriber);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#setHealth('starting');
    this.#loop = this.#run();
  }

  /** Stops ffmpeg (SIGTERM, then SIGKILL after 2 s) and the reconnect loop. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    this.#kill();
    await this.#loop;
    this.#setHealth('stopped');
  }

  stats(): IngestStats {
    return { ...this.#stats, outages: this.#stats.outages.map((o) => ({ ...o })) };
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let error: CamveilError;
      try {
        const source = await this.#o.resolveSource();
        if (this.#stopped) break;
        error = await this.#runOnce(source);
      } catch (e) {
        error = asCamveilError(e, `camera ${this.#o.cameraId}`);
      }
      if (this.#stopped) break;
      this.#stats.restarts += 1;
      this.#beginOutage(error);
      // Wrong credentials or a source that is not video will not fix themselves quickly: say "failed".
      const hopeless = error.code === 'CAMVEIL_E_CAMERA_AUTH' || error.code === 'CAMVEIL_E_CAMERA_NOT_VIDEO' || error.code === 'CAMVEIL_E_SECRET_UNREADABLE';
      this.#setHealth(hopeless ? 'failed' : 'reconnecting', error);
      const delay = this.#backoff.next();
      this.#o.logger.warn(
        { camera: this.#o.cameraId, code: error.code, retryInMs: delay, attempt: this.#backoff.attempts },
        `camera ${this.#o.cameraId}: ${error.message}`,
      );
      await this.#sleep(delay);
    }
  }

  /** Runs ffmpeg once; resolves with the error that ended the stream. */
  #runOnce(source: IngestSource): Promise<CamveilError> {
    const where = `camera ${this.#o.cameraId}`;
    const { analysis } = this.#o;
    const motionGrey = this.#o.motionGrey ?? motionGreySpec(analysis.width, analysis.height);
    const { args, sourceLists } = buildIngestArgs({
      main: source.main,
      ...(source.sub === undefined ? {} : { sub: source.sub }),
      analysis,
      ioTimeoutSeconds: this.#o.ioTimeoutSeconds ?? 10,
      ffmpegMajor: this.#o.ffmpegMajor,
      ...(this.#o.maskBoxes === undefined ? {} : { maskBoxes: this.#o.maskBoxes }),
      ...(motionGrey === false ? {} : { motionGrey }),
    });
    const spawn = this.#o.spawn ?? nodeSpawn;
    // fd 3 carries the analysis frames; fds 4 and 5 the source lists (URLs with credentials: never argv);
    // fd 6 the motion grey images.
    const stdio: Array<'ignore' | 'pipe'> = ['ignore', 'pipe', 'pipe', 'pipe'];
    const pipeFd = (fd: number) => {
      while (stdio.length <= fd) stdio.push('ignore');
      stdio[fd] = 'pipe';
    };
    for (const { fd } of sourceLists) pipeFd(fd);
    if (motionGrey !== false) pipeFd(MOTION_GREY_FD);
    const child = spawn(this.#o.ffmpeg, args, { stdio });
    this.#child = child;
    for (const { fd, text } of sourceLists) {
      const pipe = child.stdio[fd] as Writable | null;
      // EPIPE when ffmpeg exits before reading its list: the exit itself is reported below.
      pipe?.on('error', () => undefined);
      pipe?.end(text);
    }
    const stderr = new StderrTail();
    // How long the run lasted is an interval: elapsed time, so a step of the wall clock cannot make an
    // immediate refusal look like a camera that stayed silent for the whole socket timeout (or the reverse).
    const startedAt = monotonicMs();
    const ioTimeoutMs = (this.#o.ioTimeoutSeconds ?? 10) * 1000;
    const stallMs = this.#o.stallTimeoutMs ?? 15_000;
    let stallTimer: NodeJS.Timeout | undefined;
    let stalled = false;
    let receiving = false;

    const onData = () => {
      if (!receiving) {
        receiving = true;
        this.#backoff.reset();
        this.#endOutage();
        this.#stats.streamingSince = this.#now();
        this.#setHealth('streaming');
        this.#o.logger.info({ camera: this.#o.cameraId }, `camera ${this.#o.cameraId}: streaming`);
      }
      stallTimer?.refresh();
    };
    stallTimer = setTimeout(() => {
      stalled = true;
      this.#kill();
    }, stallMs);

    const splitter = new Fmp4Splitter({
      onInit: (init) => this.#fragments.init(init),
      onFragment: (bytes, durationMs) => {
        this.#stats.fragmentsIn += 1;
        this.#fragments.fragment(bytes, durationMs, this.#now());
      },
    });
    let connectionFrames = 0;
    const deliver = (data: Buffer, grey?: Buffer) => {
      this.#stats.framesIn += 1;
      const mediaMs = Math.round((connectionFrames++ * 1000) / analysis.fps);
      this.#o.handlers.onFrame({
        cameraId: this.#o.cameraId,
        at: this.#now(),
        elapsedMs: monotonicMs(),
        seq: this.#frameSeq++,
        mediaMs,
        width: analysis.width,
        height: analysis.height,
        data,
        ...(grey === undefined || motionGrey === false ? {} : { motionGrey: { width: motionGrey.width, height: motionGrey.height, data: grey } }),
      });
    };
    // With the motion output, an analysis frame waits for its grey image (or the reverse) and both go
    // together. Should the two ever drift apart, nothing more is delivered from this run: it is restarted.
    const pairing = motionGrey === false ? undefined : new FramePairing(MAX_FRAMES_AHEAD, deliver);
    let desynced = false;
    const pushPaired = (kind: 'rgb' | 'grey', frame: Buffer) => {
      if (pairing === undefined || desynced) return;
      try {
        pairing.push(kind, frame);
      } catch (e) {
        desynced = true;
        stderr.push(`\n${asCamveilError(e).message}`);
        this.#kill();
      }
    };
    const frames = new RawFrameReader(frameBytes(analysis), (data) => (pairing === undefined ? deliver(data) : pushPaired('rgb', data)));
    const greyImages = motionGrey === false ? undefined : new RawFrameReader(motionGrey.width * motionGrey.height, (grey) => pushPaired('grey', grey));

    child.stdout?.on('data', (chunk: Buffer) => {
      onData();
      this.#stats.mainBytesIn += chunk.length;
      try {
        splitter.push(chunk);
      } catch (e) {
        // A corrupt container from the camera: restart the stream rather than cut clips from garbage.
        stderr.push(`\n${asCamveilError(e).message}`);
        this.#kill();
      }
    });
    (child.stdio[FRAMES_FD] as Readable | null)?.on('data', (chunk: Buffer) => {
      onData();
      frames.push(chunk);
    });
    if (greyImages !== undefined) {
      (child.stdio as ReadonlyArray<Readable | Writable | null | undefined>)[MOTION_GREY_FD]?.on('data', (chunk: Buffer) => {
        onData();
        greyImages.push(chunk);
      });
    }
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));

    return new Promise((resolve) => {
      let settled = false;
      const finish = (error: CamveilError) => {
        if (settled) return;
        settled = true;
        clearTimeout(stallTimer);
        stallTimer = undefined;
        this.#child = undefined;
        if (receiving) {
          this.#fragments.streamEnd();
          this.#o.handlers.onStreamEnd(this.#stopped);
        }
        resolve(error);
      };
      child.once('error', (e) => {
        const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
        finish(
          new CamveilError(missing ? 'CAMVEIL_E_FFMPEG_MISSING' : 'CAMVEIL_E_INTERNAL', `${where}: cannot start ffmpeg (${e.message})`, {
            where,
            cause: e,
          }),
        );
      });
      child.once('close', (code, signal) => {
        if (stalled) {
          finish(new CamveilError('CAMVEIL_E_STREAM_LOST', `${where}: no data for ${Math.round(stallMs / 1000)} s; restarting the stream`, { where }));
        } else if (this.#stopped) {
          finish(new CamveilError('CAMVEIL_E_STREAM_LOST', `${where}: stopped`, { where }));
        } else {
          const detail = stderr.text.trim() === '' ? `ffmpeg exited (${signal ?? `code ${code}`})` : stderr.text;
          finish(classifyFfmpegFailure(detail, where, { streamed: receiving, lastedIoTimeout: monotonicMs() - startedAt >= ioTimeoutMs }));
        }
      });
    });
  }

  #kill(): void {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('close', () => clearTimeout(force));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  #setHealth(health: CameraHealth, error?: CamveilError): void {
    const changed = this.#stats.health !== health || this.#stats.error?.code !== error?.code;
    this.#stats.health = health;
    if (error === undefined) delete this.#stats.error;
    else this.#stats.error = { code: error.code, message: error.message };
    if (health !== 'streaming') delete this.#stats.streamingSince;
    if (changed) this.#o.handlers.onHealth(health, error);
  }

  #beginOutage(error: CamveilError): void {
    const last = this.#stats.outages.at(-1);
    if (last !== undefined && last.to === undefined) {
      last.lastCode = error.code;
      last.code = error.code;
      return;
    }
    this.#stats.outages.push({ from: this.#now(), firstCode: error.code, lastCode: error.code, code: error.code });
    if (this.#stats.outages.length > MAX_OUTAGES) this.#stats.outages.shift();
  }

  #endOutage(): void {
    const last = this.#stats.outages.at(-1);
    if (last !== undefined && last.to === undefined) last.to = this.#now();
  }
}
