import { randomUUID } from 'node:crypto';
import { blurBoxes } from '../analysis/faces/bystander-blur.js';
import { PersonFaceLooks } from '../analysis/faces/face-looks.js';
import type { FaceBox } from '../analysis/faces/face-engine.js';
import type { Box } from '../analysis/box.js';
import type { AnalysedFrame, FrameAnalyser, ObjectsAnswer } from '../analysis/frame-analyser.js';
import { FrameQueue } from '../analysis/frame-queue.js';
import { paintRuns, privacyMaskRuns } from '../analysis/mask.js';
import { MotionDetector } from '../analysis/motion.js';
import type { BackoffOptions } from './backoff.js';
import { boundingBox } from './ffmpeg-args.js';
import type { AnalysisFrame } from './frame.js';
import { EventObjectsTally } from './event-objects.js';
import type { FragmentSubscriber, Unsubscribe } from './fragment-fan-out.js';
import { CameraIngest, type IngestSource, type IngestStats } from './ingest.js';
import type { CameraConfig, RecordingConfig } from '../config/schema.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { ClipRecorder } from '../recording/clip-recorder.js';
import type { EventObjects, MediaSink } from '../recording/sink.js';
import { encodeSnapshot } from '../recording/snapshot.js';

export interface CameraPipelineOptions {
  camera: CameraConfig;
  recording: RecordingConfig;
  sink: MediaSink;
  bus: EventBus;
  logger: Logger;
  ffmpeg: string;
  ffmpegMajor: number;
  /** Where the streams are: resolved before every (re)connect. */
  resolveSource: () => Promise<IngestSource>;
  /**
   * Offered every analysed frame, masked, after motion detection, in this order (each asks the gate itself
   * for what it needs consent for). Shared by all cameras: the face stage, and whatever analyser comes next.
   */
  analysers?: readonly FrameAnalyser[];
  /**
   * The objects analyser. On a camera with `objects.enabled` it is offered each frame with motion first, and
   * the analysers marked `afterObjects` (the face stage) get the frame only after it: with the people due a look for faces (PersonFaceLooks:
   * a few frames per person track, then every few seconds; every person on a camera whose clips are
   * blurred), and not at all when there is none. When it cannot look (gate, model) they get the frame as
   * they would without it; a frame it dropped goes no further.
   */
  objects?: FrameAnalyser;
  /** How long a closing event waits for the objects analyser's answers before choosing its snapshot (default 10 000 ms). */
  objectsSettleMs?: number;
  /**
   * For a camera with `bystanderBlur`: asked for the snapshot frame, answers the faces to blur, or undefined
   * when the gate denies recognition (the snapshot then goes as it is).
   */
  bystanderBoxes?: (cameraId: string, frame: AnalysisFrame) => Promise<readonly FaceBox[] | undefined>;
  /** How long a snapshot may wait for its bystander check before it is withheld (default 3 000 ms). */
  bystanderTimeoutMs?: number;
  /** Frames waiting for analysis before the oldest is dropped. */
  analysisQueue?: number;
  backoff?: BackoffOptions;
  stallTimeoutMs?: number;
  now?: () => number;
}

export interface CameraStatus extends IngestStats {
  cameraId: string;
  motion: { enabled: boolean; active: boolean; events: number };
  clips: number;
  framesDropped: number;
  framesAnalysed: number;
  /** Snapshots not sent because their bystander check failed or timed out (cameras with `bystanderBlur`). */
  snapshotsWithheld: number;
  /** Bytes of video held in RAM for this camera now (ring buffer and clips on their way to the sink). */
  memoryBytes: number;
}

/** A snapshot's bystander check failed or timed out: the snapshot is withheld (see #withoutBystanders). */
class BystanderCheckFailed extends Error {}

interface OpenEvent {
  eventId: string;
  /** On elapsed time (AnalysisFrame.elapsedMs): the post-roll is an interval. */
  lastMotionElapsed: number;
  peakScore: number;
  peakFrame: AnalysisFrame;
  /** What the objects analyser saw in the event's frames. */
  objects: EventObjectsTally;
  /** Resolves the clip's ClipMeta.settled. */
  settle: (objects: EventObjects | undefined) => void;
}

/**
 * One camera end to end: ingest → bounded frame queue → motion detection → clip recorder and snapshot →
 * sink. An event opens on the first frame with motion and closes once no motion has been seen for the
 * post-roll; its clip spans pre-roll to close (capped at the maximum length, after which continuing
 * motion opens a new event), and its snapshot is the frame with the highest motion score.
 */
export class CameraPipeline {
  readonly #o: CameraPipelineOptions;
  readonly #ingest: CameraIngest;
  readonly #recorder: ClipRecorder;
  readonly #queue: FrameQueue<AnalysisFrame>;
  readonly #detector: MotionDetector | undefined;
  /** Byte ranges of an analysis frame under the privacy masks: painted black as each frame arrives. */
  readonly #maskRuns: Uint32Array;
  readonly #now: () => number;
  #event: OpenEvent | undefined;
  #events = 0;
  #analysed = 0;
  #withheld = 0;
  #analysisLoop: Promise<void> | undefined;
  readonly #snapshots = new Set<Promise<void>>();
  /** Which people found by the objects analyser are due a look for faces (a few per track, then now and then). */
  readonly #faceLooks = new PersonFaceLooks();

  constructor(options: CameraPipelineOptions) {
    this.#o = options;
    const { camera, recording } = options;
    this.#now = options.now ?? Date.now;
    this.#recorder = new ClipRecorder({
      cameraId: camera.id,
      preRollMs: recording.preRollSeconds * 1000,
      maxClipMs: recording.maxClipSeconds * 1000,
      memoryCeilingBytes: recording.memoryCeilingMiB * 1024 * 1024,
      sink: options.sink,
      logger: options.logger,
      onClipEnded: (meta, summary) => {
        options.bus.emit('clip.ready', { cameraId: camera.id, eventId: meta.eventId, startedAt: meta.startedAt, durationMs: summary.durationMs, bytes: summary.bytes, endedBy: summary.endedBy });
        options.logger.info({ camera: camera.id, event: meta.eventId, durationMs: summary.durationMs, bytes: summary.bytes, endedBy: summary.endedBy }, 'clip ready');
        // A clip cut at the maximum length closes its event; motion that goes on opens the next one.
        if (this.#event?.eventId === meta.eventId) this.#closeEvent();
      },
    });
    this.#queue = new FrameQueue<AnalysisFrame>(options.analysisQueue ?? 2, (total) => {
      if (total === 1 || total % 10 === 0) options.bus.emit('frames.dropped', { cameraId: camera.id, total });
    });
    this.#maskRuns = privacyMaskRuns(camera.privacyMasks, camera.analysis.width, camera.analysis.height);
    this.#detector = camera.motion.enabled
      ? new MotionDetector({
          width: camera.analysis.width,
          height: camera.analysis.height,
          zones: camera.motion.zones,
          privacyMasks: camera.privacyMasks,
          sensitivity: camera.motion.sensitivity,
          minArea: camera.motion.minArea,
        })
      : undefined;
    this.#ingest = new CameraIngest({
      cameraId: camera.id,
      resolveSource: options.resolveSource,
      analysis: camera.analysis,
      // Privacy masks go into every clip as well as every snapshot.
      maskBoxes: camera.privacyMasks.map(boundingBox),
      // The motion detector's grey image, made by ffmpeg beside the RGB frame; none for a camera without motion.
      motionGrey: this.#detector?.greySpec ?? false,
      ffmpeg: options.ffmpeg,
      ffmpegMajor: options.ffmpegMajor,
      logger: options.logger,
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
      now: this.#now,
      handlers: {
        onFrame: (frame) => this.#queue.push(this.#masked(frame)),
        onHealth: (health, error) =>
          options.bus.emit('camera.state', {
            cameraId: camera.id,
            health,
            ...(error === undefined ? {} : { error: { code: error.code, message: error.message } }),
          }),
        onStreamEnd: (stopped) => {
          if (stopped) this.#recorder.end('shutdown');
          else this.#recorder.onStreamEnd();
          this.#closeEvent();
        },
      },
    });
  }

  /** Joins a taker of this camera's main stream (fragmented MP4, masks painted in) beside the recorder. */
  subscribe(subscriber: FragmentSubscriber): Unsubscribe {
    return this.#ingest.subscribe(subscriber);
  }

  get cameraId(): string {
    return this.#o.camera.id;
  }

  start(): void {
    this.#analysisLoop = this.#analyse();
    // The recorder is the first taker of the stream; its end is told by onStreamEnd above (stopped or lost).
    this.#ingest.subscribe({
      name: 'recorder',
      onInit: (init) => this.#recorder.onInit(init),
      onFragment: (bytes, durationMs, at) => this.#recorder.onFragment(bytes, durationMs, at),
    });
    this.#ingest.start();
  }

  /** Stops ingest and analysis; an open clip ends ('shutdown') and is handed to the sink completely. */
  async stop(): Promise<void> {
    await this.#ingest.stop();
    this.#queue.close();
    await this.#analysisLoop;
    this.#closeEvent();
    await this.#recorder.stop();
    await Promise.allSettled([...this.#snapshots]);
  }

  status(): CameraStatus {
    return {
      cameraId: this.#o.camera.id,
      ...this.#ingest.stats(),
      motion: { enabled: this.#detector !== undefined, active: this.#event !== undefined, events: this.#events },
      clips: this.#recorder.clipsMade,
      framesDropped: this.#queue.dropped,
      framesAnalysed: this.#analysed,
      snapshotsWithheld: this.#withheld,
      memoryBytes: this.#recorder.bytesHeld,
    };
  }

  /**
   * Paints the privacy masks into the frame, in place, before it is queued: motion, every analyser, the
   * bystander check and snapshots only ever see the masked picture. The frame is the ingest's own copy
   * (RawFrameReader hands out one buffer per frame), so nothing else holds the unmasked pixels.
   */
  #masked(frame: AnalysisFrame): AnalysisFrame {
    if (this.#maskRuns.length > 0) paintRuns(frame.data, this.#maskRuns);
    return frame;
  }

  async #analyse(): Promise<void> {
    for (;;) {
      const frame = await this.#queue.next();
      if (frame === undefined) return;
      if (this.#detector === undefined) continue;
      try {
        const { score, motion, regions } = await this.#detector.update(frame);
        this.#analysed += 1;
        this.#onMotionResult(frame, score, motion);
        this.#offer(frame, motion, regions);
      } catch (error) {
        this.#o.logger.error({ camera: this.#o.camera.id, err: error }, 'motion analysis failed on a frame');
      }
    }
  }

  /**
   * Offers the frame to the analysers: on a camera with objects on, a frame with motion goes to the objects
   * analyser first and to the others after its answer (#onObjects); otherwise to every analyser at once.
   */
  #offer(frame: AnalysisFrame, motion: boolean, regions: readonly Box[]): void {
    const event = this.#event;
    const analysed: AnalysedFrame = { cameraId: this.#o.camera.id, frame, motion, ...(event === undefined ? {} : { eventId: event.eventId }) };
    const objects = this.#o.objects;
    if (objects === undefined || !motion || !this.#o.camera.objects.enabled) {
      this.#offerTo(this.#o.analysers ?? [], analysed);
      return;
    }
    this.#offerTo((this.#o.analysers ?? []).filter((a) => a.afterObjects !== true), analysed);
    event?.objects.offered();
    let answered = false;
    const onObjects = (answer: ObjectsAnswer): void => {
      if (answered) return;
      answered = true;
      this.#onObjects(event, analysed, answer);
    };
    this.#offerTo([objects], { ...analysed, motionRegions: regions, onObjects });
  }

  /** One analyser that throws (it should not) neither stops the others nor the camera. */
  #offerTo(analysers: readonly FrameAnalyser[], analysed: AnalysedFrame): void {
    for (const analyser of analysers) {
      try {
        analyser.offer(analysed);
      } catch (error) {
        this.#o.logger.error({ camera: this.#o.camera.id, analyser: analyser.name, err: error }, 'analyser refused a frame');
        analysed.onObjects?.('unavailable');
      }
    }
  }

  /**
   * The objects analyser's answer for a frame: noted on the event it belonged to (labels, scores, the best
   * object and its frame for the snapshot), then the frame goes on to the other analysers — with its people
   * when there are any, not at all when there are none or the frame was dropped, and as it is when the
   * analyser could not look.
   */
  #onObjects(event: OpenEvent | undefined, analysed: AnalysedFrame, answer: ObjectsAnswer): void {
    const found = typeof answer === 'string' ? undefined : answer;
    event?.objects.answered(found, analysed.frame);
    if (answer === 'unavailable') {
      this.#offerTo(this.#afterObjects(), analysed);
      return;
    }
    if (found === undefined) return;
    const people = found.filter((o) => o.label === 'person');
    // A camera whose clips are blurred needs every frame's faces (the bystander log); the others ration them.
    const due = this.#o.camera.bystanderBlurClips ? people.map((p) => p.box) : this.#faceLooks.due(people, analysed.frame.elapsedMs ?? analysed.frame.at);
    if (due.length > 0) this.#offerTo(this.#afterObjects(), { ...analysed, people: due });
  }

  /** The analysers that look at frames with motion only after the objects analyser, and only at people (FrameAnalyser.afterObjects). */
  #afterObjects(): FrameAnalyser[] {
    return (this.#o.analysers ?? []).filter((a) => a.afterObjects === true);
  }

  #onMotionResult(frame: AnalysisFrame, score: number, motion: boolean): void {
    const cameraId = this.#o.camera.id;
    const event = this.#event;
    if (motion) {
      if (event === undefined) {
        const eventId = randomUUID();
        let settle!: OpenEvent['settle'];
        const settled = new Promise<EventObjects | undefined>((resolve) => (settle = resolve));
        this.#event = {
          eventId,
          lastMotionElapsed: frame.elapsedMs ?? frame.at,
          peakScore: score,
          peakFrame: frame,
          objects: new EventObjectsTally(),
          settle,
        };
        this.#events += 1;
        this.#o.bus.emit('motion.start', { cameraId, at: frame.at, score, ...(frame.mediaMs === undefined ? {} : { mediaMs: frame.mediaMs }) });
        this.#o.logger.info({ camera: cameraId, event: eventId, score }, 'motion started');
        this.#recorder.start(eventId, frame.at, settled);
        return;
      }
      event.lastMotionElapsed = frame.elapsedMs ?? frame.at;
      if (score > event.peakScore) {
        event.peakScore = score;
        event.peakFrame = frame;
      }
      return;
    }
    if (event !== undefined && (frame.elapsedMs ?? frame.at) - event.lastMotionElapsed >= this.#o.recording.postRollSeconds * 1000) {
      this.#o.bus.emit('motion.end', { cameraId, at: frame.at });
      this.#recorder.end('motion-stopped');
      this.#closeEvent();
    }
  }

  /**
   * The snapshot frame with bystanders' faces pixelated, for a camera with `bystanderBlur`. Unchanged when
   * the gate denies recognition (nothing can tell the household from a bystander then; privacy masks still
   * apply) or no bystander check is wired. Rejects (BystanderCheckFailed) when the check fails or takes longer
   * than `bystanderTimeoutMs`: the snapshot is then withheld rather than sent with faces unblurred, or sent
   * blurred all over (a frame blurred enough to hide every face shows nothing worth sending).
   */
  async #withoutBystanders(frame: AnalysisFrame): Promise<AnalysisFrame> {
    const check = this.#o.bystanderBoxes;
    if (!this.#o.camera.bystanderBlur || check === undefined) return frame;
    const limitMs = this.#o.bystanderTimeoutMs ?? 3_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${limitMs} ms`)), limitMs);
    });
    let boxes: readonly FaceBox[] | undefined;
    try {
      boxes = await Promise.race([check(this.#o.camera.id, frame), timeout]);
    } catch (error) {
      throw new BystanderCheckFailed(error instanceof Error ? error.message : String(error));
    } finally {
      clearTimeout(timer);
    }
    if (boxes === undefined || boxes.length === 0) return frame;
    return { ...frame, data: await blurBoxes(frame.data, frame.width, frame.height, boxes) };
  }

  /**
   * Closes the open event, if any, and sends its snapshot: the frame with the best object of the
   * highest-priority label when the objects analyser found one, else the frame with the most motion. The
   * clip's `settled` is resolved afterwards, so the event's record names the snapshot and what was seen.
   */
  #closeEvent(): void {
    const event = this.#event;
    if (event === undefined) return;
    this.#event = undefined;
    const { camera, sink, bus, logger } = this.#o;
    const delivery = event.objects
      .settled(this.#o.objectsSettleMs ?? 10_000)
      .then(() => this.#withoutBystanders(event.objects.bestFrame ?? event.peakFrame))
      .then((frame) => encodeSnapshot(frame, { eventId: event.eventId, privacyMasks: camera.privacyMasks }))
      .then(async (snapshot) => {
        await sink.snapshot(snapshot);
        bus.emit('snapshot.ready', { cameraId: camera.id, eventId: event.eventId, at: snapshot.at, bytes: snapshot.jpeg.length, width: snapshot.width, height: snapshot.height });
      })
      .catch((error: unknown) => {
        if (error instanceof BystanderCheckFailed) {
          this.#withheld += 1;
          logger.warn({ camera: camera.id, event: event.eventId, withheld: this.#withheld, err: error }, 'snapshot withheld: bystanders could not be checked');
          return;
        }
        logger.error({ camera: camera.id, event: event.eventId, err: error }, 'snapshot failed');
      })
      .finally(() => event.settle(event.objects.summary()));
    this.#snapshots.add(delivery);
    void delivery.finally(() => this.#snapshots.delete(delivery));
  }
}
