import type { FrameAnalyser } from '../analysis/frame-analyser.js';
import type { LiveConfig } from '../config/live-config.js';
import type { CameraConfig } from '../config/schema.js';
import { resolveCameraPassword } from '../config/secrets.js';
import type { CameraRegistry } from '../control/camera-registry.js';
import { applySettingsPatch, settingsOf, type HubSettings, type SettingsPatch } from '../control/settings.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { CameraFacts } from '../policy/camera-facts.js';
import type { MediaSink } from '../recording/sink.js';
import type { BackoffOptions } from './backoff.js';
import { CameraPipeline, type CameraPipelineOptions, type CameraStatus } from './camera-pipeline.js';
import { describeFactsForLog } from './device-facts.js';
import type { IngestSource } from './ingest.js';
import { resolveCameraSource } from './source.js';

/** What the app changed about one of its cameras (`cameras/add|update|remove`). */
export type CameraChange = { kind: 'added' | 'updated'; camera: CameraConfig } | { kind: 'removed'; cameraId: string };

export interface CameraManagerOptions {
  /** The cameras in force: the manager is the one that changes them while the hub runs. */
  live: LiveConfig;
  /** App-managed cameras' passwords, sealed to the hub key. */
  registry: CameraRegistry;
  /** Where what a camera says about itself is recorded for the gate. */
  cameraFacts: CameraFacts;
  bus: EventBus;
  logger: Logger;
  ffmpeg: { path: string; major: number };
  sink: MediaSink;
  /** Offered every camera's masked frames, in order (the face stage first). */
  analysers: readonly FrameAnalyser[];
  /** Started before the cameras and stopped after them (the face stage has its own service). */
  extraAnalysers: readonly FrameAnalyser[];
  /** The objects analyser (CameraPipelineOptions.objects); started before the cameras and stopped after them. */
  objects?: FrameAnalyser;
  bystanderBoxes?: CameraPipelineOptions['bystanderBoxes'];
  /** Told of each camera as its pipeline is made: whether its clips are blurred (bystanderBlurClips). */
  watch?: (cameraId: string, analysis: { width: number; height: number } | undefined) => void;
  pseudonymise: (kind: string, value: string) => string;
  env: NodeJS.ProcessEnv;
  backoff?: BackoffOptions;
  stallTimeoutMs?: number;
}

/**
 * One pipeline per enabled camera, with their lifecycles. A camera that fails (unreachable, wrong
 * password, not video) shows that in its own status and retries; the others keep working. Cameras added,
 * changed or removed by the app, and settings changed by `config/set`, swap pipelines while the hub runs
 * and change the cameras in force (LiveConfig), which everything else reads; `cameras.changed` tells them.
 */
export class CameraManager {
  readonly #o: CameraManagerOptions;
  readonly #pipelines: CameraPipeline[] = [];

  constructor(options: CameraManagerOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    await this.#o.objects?.start();
    for (const analyser of this.#o.extraAnalysers) await analyser.start();
    for (const camera of this.#o.live.cameras()) {
      if (camera.enabled) this.#startPipeline(camera);
    }
  }

  /** Stops every camera (open clips end and are sealed and stored), then the extra analysers. */
  async stop(): Promise<void> {
    await Promise.all(this.#pipelines.map((p) => p.stop()));
    this.#pipelines.length = 0;
    for (const analyser of this.#o.extraAnalysers) await analyser.stop();
    await this.#o.objects?.stop();
  }

  statuses(): CameraStatus[] {
    return this.#pipelines.map((p) => p.status());
  }

  /** Starts, restarts or stops an app-managed camera after `cameras/add|update|remove`. */
  async apply(change: CameraChange): Promise<void> {
    const { live, logger } = this.#o;
    const id = change.kind === 'removed' ? change.cameraId : change.camera.id;
    await this.#stopPipeline(id);
    if (change.kind === 'removed') {
      live.removeCamera(id);
      this.#o.cameraFacts.forget(id);
      logger.info({ camera: id }, 'camera removed by the app');
    } else {
      live.putCamera(change.camera);
      if (change.camera.enabled) this.#startPipeline(change.camera);
      logger.info({ camera: id, change: change.kind }, `camera ${change.kind} by the app`);
    }
    this.#o.bus.emit('cameras.changed', { cameraIds: live.cameras().map((c) => c.id) });
  }

  /**
   * Applies settings changed over MQTT (`config/set`: zones, masks, sensitivity, analysis fps, retention)
   * in memory. A camera whose settings changed is restarted: its motion detector reads them when built.
   */
  async applySettings(patch: SettingsPatch): Promise<HubSettings> {
    const next = applySettingsPatch(this.#o.live.current, patch);
    this.#o.live.replace(next);
    for (const { id } of patch.cameras ?? []) {
      const i = this.#pipelines.findIndex((p) => p.cameraId === id);
      const camera = next.cameras.find((c) => c.id === id);
      if (i < 0 || camera === undefined) continue;
      await this.#pipelines[i]!.stop();
      const pipeline = this.#make(camera);
      this.#pipelines[i] = pipeline;
      pipeline.start();
    }
    if ((patch.cameras ?? []).length > 0) this.#o.bus.emit('cameras.changed', { cameraIds: next.cameras.map((c) => c.id) });
    return settingsOf(next);
  }

  #startPipeline(camera: CameraConfig): void {
    const pipeline = this.#make(camera);
    this.#pipelines.push(pipeline);
    pipeline.start();
  }

  async #stopPipeline(id: string): Promise<void> {
    const i = this.#pipelines.findIndex((p) => p.cameraId === id);
    if (i < 0) return;
    await this.#pipelines[i]!.stop();
    this.#pipelines.splice(i, 1);
  }

  #make(camera: CameraConfig): CameraPipeline {
    const o = this.#o;
    o.watch?.(camera.id, camera.bystanderBlurClips ? camera.analysis : undefined);
    return new CameraPipeline({
      camera,
      recording: o.live.current.recording,
      sink: o.sink,
      bus: o.bus,
      logger: o.logger,
      ffmpeg: o.ffmpeg.path,
      ffmpegMajor: o.ffmpeg.major,
      resolveSource: () => this.#resolve(camera),
      analysers: o.analysers,
      ...(o.objects === undefined ? {} : { objects: o.objects }),
      ...(o.bystanderBoxes === undefined ? {} : { bystanderBoxes: o.bystanderBoxes }),
      ...(o.backoff === undefined ? {} : { backoff: o.backoff }),
      ...(o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: o.stallTimeoutMs }),
    });
  }

  /** Reads the password when it is needed (never kept) and resolves the camera's stream URLs. */
  async #resolve(camera: CameraConfig): Promise<IngestSource> {
    const { registry, logger } = this.#o;
    // An app-managed camera's password is stored sealed to the hub key and opened only now.
    const password = registry.has(camera.id) && !this.#o.live.fileCameraIds.has(camera.id) ? await registry.password(camera.id) : resolveCameraPassword(camera, this.#o.env);
    const resolved = await resolveCameraSource(camera, password, { logger });
    if (resolved.facts !== undefined) {
      const device = describeFactsForLog(resolved.facts, this.#o.pseudonymise);
      logger.info({ camera: camera.id, device }, 'camera identified');
    }
    // What the camera said about itself is the gate's fact for it, for the service and the console alike.
    const seen = this.#o.cameraFacts.observe(camera.id, resolved.facts, resolved.mainSize);
    if (seen.before.capable !== seen.after.capable) logger.info({ camera: camera.id, faceCapable: seen.after.capable, reason: seen.after.reason }, 'face capability');
    const kind = resolved.kind === 'file' ? 'file' : 'rtsp';
    return {
      main: { url: resolved.main, kind },
      ...(resolved.sub === undefined ? {} : { sub: { url: resolved.sub, kind } }),
    };
  }
}
