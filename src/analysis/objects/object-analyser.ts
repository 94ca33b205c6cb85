import type { AnalysisFrame } from '../../cameras/frame.js';
import { monotonicMs } from '../../clock.js';
import type { CameraConfig } from '../../config/schema.js';
import { CamveilError } from '../../errors.js';
import type { EventBus } from '../../events.js';
import type { Logger } from '../../log.js';
import type { GateDecision } from '../../policy/gate.js';
import { OBJECT_LABELS, type ObjectLabel } from '../../policy/vocabulary.js';
import type { Box } from '../box.js';
import { FaceModelHealth } from '../faces/model-health.js';
import type { AnalysedFrame, DetectedObject, FrameAnalyser, ObjectsAnswer } from '../frame-analyser.js';
import { FrameQueue } from '../frame-queue.js';
import { SerialOps } from '../serial-ops.js';
import { planCrops } from './crop-planner.js';
import { objectFilter } from './object-filter.js';
import { ObjectTracker } from './object-tracker.js';
import { ObjectWorkerClient } from './object-worker-client.js';

export interface ObjectAnalyserOptions {
  /** Asked when a frame is offered and again right before the model call: a denial means the model never sees it. */
  gate: { mayDetectObjects(cameraId: string): GateDecision };
  /** The camera's settings in force now (objects: classes, threshold, zones), or undefined for a removed camera. */
  camera: (cameraId: string) => CameraConfig | undefined;
  /** Every camera frames may come from: when none may use objects, the model is unloaded. */
  cameraIds: () => readonly string[];
  bus: EventBus;
  logger: Logger;
  /** Frames waiting for the worker before the oldest is dropped (default 2, as the face stage's). */
  queueCapacity?: number;
  /** Elapsed time for tracks, the retry hold and the idle check (default `monotonicMs`, src/clock.ts). */
  now?: () => number;
  /** How often tracks of cameras that went quiet are ended, and the model's use is checked (default 1 000 ms). */
  sweepMs?: number;
  /** Starts a worker; tests may substitute. Default: a model worker thread hosting the `objects` net. */
  createWorker?: () => ObjectWorkerClient;
}

export interface ObjectAnalyserStats {
  /** The model backend while the model is loaded. */
  backend?: string;
  loaded: boolean;
  workersStarted: number;
  /** Model calls in the worker(s) since the analyser was built (one per crop): proof it did (not) run. */
  modelCalls: number;
  framesOffered: number;
  framesGatedOut: number;
  framesDropped: number;
  framesAnalysed: number;
  /** Crops run (a frame is one or more crops around its motion). */
  crops: number;
  /** Confirmed objects by label since start. */
  confirmed: Record<ObjectLabel, number>;
  /** Wall time of the last frame in the worker, ms. */
  lastFrameMs?: number;
  errors: number;
}

interface Job {
  cameraId: string;
  frame: AnalysisFrame;
  eventId: string | undefined;
  regions: readonly Box[];
  answer: (answer: ObjectsAnswer) => void;
}

/** The tracker of a camera, with when it last saw a frame (elapsed ms). */
interface CameraTracks {
  tracker: ObjectTracker;
  lastAt: number;
}

/**
 * People, vehicles and animals, found on the hub: frame with motion → gate → bounded queue → one model
 * worker (crops around the motion, squared to the model's input; a full-frame pass when motion covers
 * most of the picture) → the camera's classes, threshold and zones → a tracker per camera → the answer
 * to the pipeline, and `object.confirmed` / `object.ended` on the bus. Identifies no one: a box and a
 * label. Like the face stage, the worker starts on the first allowed frame and ends when no camera may
 * use objects.
 */
export class ObjectAnalyser implements FrameAnalyser {
  readonly name = 'objects';
  readonly #o: ObjectAnalyserOptions;
  readonly #now: () => number;
  readonly #queue: FrameQueue<Job>;
  readonly #tracks = new Map<string, CameraTracks>();
  readonly #health: FaceModelHealth;
  #worker: ObjectWorkerClient | undefined;
  #closedCalls = 0;
  #loop: Promise<void> | undefined;
  readonly #ops = new SerialOps((error) => {
    this.#stats.errors += 1;
    this.#o.logger.error({ err: error }, 'objects: worker operation failed');
  });
  #outstanding = 0;
  #stopped = false;
  #retryAt = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #stats = {
    workersStarted: 0,
    framesOffered: 0,
    framesGatedOut: 0,
    framesAnalysed: 0,
    crops: 0,
    errors: 0,
    confirmed: Object.fromEntries(OBJECT_LABELS.map((l) => [l, 0])) as Record<ObjectLabel, number>,
    lastFrameMs: undefined as number | undefined,
  };

  constructor(options: ObjectAnalyserOptions) {
    this.#o = options;
    this.#now = options.now ?? monotonicMs;
    this.#queue = new FrameQueue<Job>(options.queueCapacity ?? 2, (_total, dropped) => {
      this.#outstanding -= 1;
      dropped.answer('dropped');
    });
    this.#health = new FaceModelHealth({ bus: options.bus, logger: options.logger, subject: 'objects' });
  }

  /**
   * Starts the sweep of quiet cameras' tracks and, when some camera may use objects now, loads the model in
   * the background (a load takes seconds; the first person in front of a camera should not wait for it).
   * Otherwise the worker starts on the first frame the gate allows.
   */
  start(): Promise<void> {
    this.#stopped = false;
    this.#timer = setInterval(() => this.#sweep(), this.#o.sweepMs ?? 1_000);
    this.#timer.unref();
    const wanted = this.#o.cameraIds().some((id) => this.#o.camera(id)?.objects.enabled === true && this.#allowedNow(id));
    if (wanted) void this.#ops.run(async () => void (await this.#ensureWorker()));
    return Promise.resolve();
  }

  /** Why objects are disabled now (an error code), while the model cannot be loaded. */
  get disabledReason(): string | undefined {
    return this.#health.disabledReason;
  }

  /**
   * Never blocks and never throws. A frame without motion, of a camera with objects off, or one the gate
   * refuses is answered undefined at once; otherwise it is queued (possibly pushing out, and answering
   * undefined for, the oldest waiting frame).
   */
  offer({ cameraId, frame, motion, eventId, motionRegions, onObjects }: AnalysedFrame): void {
    const answer = (objects: ObjectsAnswer): void => {
      try {
        onObjects?.(objects);
      } catch (error) {
        this.#o.logger.error({ camera: cameraId, err: error }, 'objects: the answer for a frame failed');
      }
    };
    if (this.#stopped || !motion || this.#o.camera(cameraId)?.objects.enabled !== true) {
      answer('unavailable');
      return;
    }
    this.#stats.framesOffered += 1;
    if (!this.#allowedNow(cameraId)) {
      this.#stats.framesGatedOut += 1;
      answer('unavailable');
      if (this.#worker !== undefined) void this.reconcile();
      return;
    }
    this.#outstanding += 1;
    this.#queue.push({ cameraId, frame, eventId, regions: motionRegions ?? [], answer });
    this.#loop ??= this.#run();
  }

  /** Settles when every frame offered so far has been analysed (or refused). */
  async idle(): Promise<void> {
    while (this.#outstanding > 0) await new Promise((r) => setTimeout(r, 10));
    await this.#ops.settled;
  }

  /** Ends the worker (model unloaded) when no camera may use objects now. */
  reconcile(): Promise<void> {
    const anyAllowed = this.#o.cameraIds().some((id) => this.#allowedNow(id));
    if (anyAllowed || this.#worker === undefined) return this.#ops.settled;
    return this.#ops.run(() => this.#closeWorker('no camera may use objects'));
  }

  stats(): ObjectAnalyserStats {
    const w = this.#worker;
    const { lastFrameMs, confirmed, ...rest } = this.#stats;
    return {
      ...rest,
      confirmed: { ...confirmed },
      modelCalls: this.#closedCalls + (w?.modelCalls ?? 0),
      framesDropped: this.#queue.dropped,
      loaded: w !== undefined && w.alive,
      ...(w?.alive === true && w.backend !== undefined ? { backend: w.backend } : {}),
      ...(lastFrameMs === undefined ? {} : { lastFrameMs }),
    };
  }

  /** Answers every waiting frame undefined, ends the worker and every track. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const job of this.#queue.close()) {
      this.#outstanding -= 1;
      job.answer('dropped');
    }
    await this.#loop;
    this.#loop = undefined;
    await this.#ops.run(() => this.#closeWorker('stopped'));
    const at = this.#now();
    for (const [cameraId, { tracker }] of this.#tracks) this.#report(cameraId, undefined, tracker.end(at));
    this.#tracks.clear();
  }

  /** The gate's answer now; a gate that throws means no. */
  #allowedNow(cameraId: string): boolean {
    try {
      return this.#o.gate.mayDetectObjects(cameraId).allowed;
    } catch {
      return false;
    }
  }

  async #run(): Promise<void> {
    for (;;) {
      const job = await this.#queue.next();
      if (job === undefined) return;
      let found: ObjectsAnswer = 'unavailable';
      try {
        await this.#ops.run(async () => {
          found = await this.#analyse(job);
        });
      } finally {
        this.#outstanding -= 1;
        job.answer(found);
      }
    }
  }

  /** One frame through the model (ObjectsAnswer; a failure is 'unavailable' too, by #run). */
  async #analyse(job: Job): Promise<ObjectsAnswer> {
    if (this.#stopped) return 'dropped';
    const camera = this.#o.camera(job.cameraId);
    if (camera === undefined || !camera.objects.enabled) return 'unavailable';
    const worker = await this.#ensureWorker();
    if (worker === undefined) return 'unavailable';
    // The gate's word at the moment of the model call: loading the worker can take seconds.
    if (!this.#allowedNow(job.cameraId)) {
      this.#stats.framesGatedOut += 1;
      void this.reconcile();
      return 'unavailable';
    }
    const { frame } = job;
    const crops = planCrops(job.regions, frame);
    const result = await worker.detect(frame, crops);
    this.#stats.framesAnalysed += 1;
    this.#stats.crops += crops.length;
    this.#stats.lastFrameMs = Math.round(result.ms);
    const keep = objectFilter(camera.objects, frame);
    const kept: DetectedObject[] = [];
    for (const d of result.detections) {
      const object = keep(d);
      if (object !== undefined) kept.push(object);
    }
    const at = frame.elapsedMs ?? frame.at;
    const tracks = this.#tracksOf(job.cameraId, at);
    const update = tracks.tracker.update(at, kept);
    this.#report(job.cameraId, job, update.ended, update.confirmed);
    return update.objects;
  }

  #tracksOf(cameraId: string, at: number): CameraTracks {
    let tracks = this.#tracks.get(cameraId);
    if (tracks === undefined) {
      tracks = { tracker: new ObjectTracker(), lastAt: at };
      this.#tracks.set(cameraId, tracks);
    }
    tracks.lastAt = at;
    return tracks;
  }

  /** Tells the bus of tracks ended and confirmed (each track is confirmed once: the tracker sees to it). */
  #report(
    cameraId: string,
    job: Job | undefined,
    ended: ReturnType<ObjectTracker['update']>['ended'],
    confirmed: ReturnType<ObjectTracker['update']>['confirmed'] = [],
  ): void {
    for (const t of ended) this.#o.bus.emit('object.ended', { cameraId, trackId: t.trackId, label: t.label, at: job?.frame.at ?? Date.now() });
    for (const t of confirmed) {
      this.#stats.confirmed[t.label] += 1;
      this.#o.bus.emit('object.confirmed', {
        cameraId,
        trackId: t.trackId,
        label: t.label,
        cocoClass: t.cocoClass,
        score: t.bestScore,
        box: t.bestBox,
        at: job?.frame.at ?? Date.now(),
        ...(job?.eventId === undefined ? {} : { eventId: job.eventId }),
      });
    }
  }

  /**
   * Ends the tracks of cameras that sent no frame with motion for a while (a person who stood still or
   * left: no motion, no frames): their Home Assistant sensors go off. Also unloads the model when no camera
   * may use it any more.
   */
  #sweep(): void {
    const now = this.#now();
    for (const [cameraId, tracks] of this.#tracks) {
      if (now - tracks.lastAt < tracks.tracker.maxAgeMs) continue;
      const { ended } = tracks.tracker.update(now, []);
      tracks.lastAt = now;
      this.#report(cameraId, undefined, ended);
    }
    if (this.#worker !== undefined) void this.reconcile();
  }

  async #ensureWorker(): Promise<ObjectWorkerClient | undefined> {
    if (this.#worker !== undefined && !this.#worker.alive) await this.#closeWorker('worker died');
    if (this.#worker !== undefined) return this.#worker;
    // A missing or tampered model file will not heal by itself: one attempt a minute, not one per frame.
    if (this.#now() < this.#retryAt) return undefined;
    const worker = (this.#o.createWorker ?? (() => new ObjectWorkerClient()))();
    this.#worker = worker;
    this.#stats.workersStarted += 1;
    try {
      await worker.load();
      this.#health.report(undefined);
    } catch (error) {
      this.#retryAt = this.#now() + 60_000;
      this.#health.report(error instanceof CamveilError ? error : new CamveilError('CAMVEIL_E_INTERNAL', String(error), { where: 'objects', cause: error }));
      await this.#closeWorker('load failed');
      return undefined;
    }
    this.#o.logger.info({ workers: this.#stats.workersStarted, backend: worker.backend }, 'objects: model loaded');
    return worker;
  }

  async #closeWorker(why: string): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    this.#worker = undefined;
    try {
      await worker.close();
    } finally {
      // Ops are serialised, so no frame is in the worker now: its counter is final.
      this.#closedCalls += worker.modelCalls;
      this.#o.logger.info({ why }, 'objects: model unloaded');
    }
  }
}
