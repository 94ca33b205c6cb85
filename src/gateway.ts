import { CameraPipeline, type CameraStatus } from './camera-pipeline.js';
import type { BackoffOptions } from './cameras/backoff.js';
import { describeFactsForLog } from './cameras/device-facts.js';
import { ffmpegMajorVersion, findFfmpeg } from './cameras/ffmpeg-binary.js';
import type { IngestSource } from './cameras/ingest.js';
import { resolveCameraSource } from './cameras/source.js';
import type { CameraConfig, Config } from './config/schema.js';
import { resolveCameraPassword } from './config/secrets.js';
import { EventBus } from './events.js';
import type { Logger } from './log.js';
import type { MediaSink } from './recording/sink.js';

export interface GatewayOptions {
  config: Config;
  logger: Logger;
  /** Where clips and snapshots go. */
  sink: MediaSink;
  bus?: EventBus;
  /** Turns a device identifier (serial, MAC) into a pseudonym for logs. */
  pseudonymise: (kind: string, value: string) => string;
  env?: NodeJS.ProcessEnv;
  /** Reconnect pacing and stall detection; tests shorten them. */
  backoff?: BackoffOptions;
  stallTimeoutMs?: number;
}

export interface GatewayState {
  hubId: string;
  region: string;
  ffmpeg: { origin: 'system' | 'npm'; major: number };
  cameras: CameraStatus[];
}

/**
 * The composition root: builds one pipeline per enabled camera and owns their lifecycle. A camera that
 * fails (unreachable, wrong password, not video) shows that in its own status and retries; the others
 * keep working. The constructor only sets fields; `start` does the work.
 */
export class Gateway {
  readonly bus: EventBus;
  readonly #o: GatewayOptions;
  readonly #pipelines: CameraPipeline[] = [];
  #ffmpeg: GatewayState['ffmpeg'] | undefined;

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.bus = options.bus ?? new EventBus();
  }

  async start(): Promise<void> {
    const { config, logger } = this.#o;
    const binaries = findFfmpeg(this.#o.env ?? process.env);
    const major = ffmpegMajorVersion(binaries.ffmpeg);
    this.#ffmpeg = { origin: binaries.origin, major };
    logger.info({ ffmpeg: binaries.origin, ffmpegMajor: major, cameras: config.cameras.length }, 'gateway starting');
    for (const camera of config.cameras) {
      if (!camera.enabled) continue;
      const pipeline = new CameraPipeline({
        camera,
        recording: config.recording,
        sink: this.#o.sink,
        bus: this.bus,
        logger,
        ffmpeg: binaries.ffmpeg,
        ffmpegMajor: major,
        resolveSource: () => this.#resolve(camera),
        ...(this.#o.backoff === undefined ? {} : { backoff: this.#o.backoff }),
        ...(this.#o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: this.#o.stallTimeoutMs }),
      });
      this.#pipelines.push(pipeline);
      pipeline.start();
    }
    await Promise.resolve();
  }

  /** Stops every camera; open clips end ('shutdown') and reach the sink before this resolves. */
  async stop(): Promise<void> {
    await Promise.all(this.#pipelines.map((p) => p.stop()));
    this.#pipelines.length = 0;
    this.#o.logger.info('gateway stopped');
  }

  /** What the hub reports about itself: health and counters, no secrets and no personal data. */
  state(): GatewayState {
    return {
      hubId: this.#o.config.hub.id,
      region: this.#o.config.hub.region,
      ffmpeg: this.#ffmpeg ?? { origin: 'system', major: 0 },
      cameras: this.#pipelines.map((p) => p.status()),
    };
  }

  /** Reads the password when it is needed (never kept) and resolves the camera's stream URLs. */
  async #resolve(camera: CameraConfig): Promise<IngestSource> {
    const password = resolveCameraPassword(camera, this.#o.env ?? process.env);
    const resolved = await resolveCameraSource(camera, password);
    if (resolved.facts !== undefined) {
      this.#o.logger.info({ camera: camera.id, device: describeFactsForLog(resolved.facts, this.#o.pseudonymise) }, 'camera identified');
    }
    const kind = resolved.kind === 'file' ? 'file' : 'rtsp';
    return {
      main: { url: resolved.main, kind },
      ...(resolved.sub === undefined ? {} : { sub: { url: resolved.sub, kind } }),
    };
  }
}
