import type { AuditLog } from '../../audit/audit-log.js';
import type { AnalysisFrame } from '../../cameras/frame.js';
import { monotonicMs } from '../../clock.js';
import type { EventBus } from '../../events.js';
import type { Logger } from '../../log.js';
import type { GateDecision } from '../../policy/gate.js';
import { CamveilError } from '../../errors.js';
import type { AnalysedFrame, FrameAnalyser } from '../frame-analyser.js';
import type { Box } from '../box.js';
import { FrameQueue } from '../frame-queue.js';
import { SerialOps } from '../serial-ops.js';
import { cropRgb, peopleArea } from './people-area.js';
import { bystanderBoxes } from './bystander-blur.js';
import type { BystanderLog } from './bystander-log.js';
import type { FaceBox } from './face-engine.js';
import { FaceWorkerClient } from './face-worker-client.js';
import { FaceMatcher, type EnrolledPerson, type MatcherOptions } from './matcher.js';
import { RecognitionAudit } from './recognition-audit.js';
import { newSightingId, type SightingRecord } from './sightings.js';
import { MATCH_THRESHOLD } from './threshold.js';

/** Where the stage gets enrolled people: a cheap revision to poll, and the decrypted list when it moved. */
export interface PeopleSource {
  revision(): number;
  load(): Promise<EnrolledPerson[]>;
}

export interface FaceStageOptions {
  /** Asked first for every frame; a denial means the nets never see it. */
  gate: { mayRecogniseFaces(cameraId: string): GateDecision };
  /** Every camera the stage may be offered frames from: when none is allowed, the models are unloaded. */
  cameraIds: () => readonly string[];
  bus: EventBus;
  logger: Logger;
  /** Decisions are audited as `face.recognition`, at most once per camera per `auditIntervalMs`. */
  audit?: AuditLog;
  cameraPseudonym: (cameraId: string) => string;
  /** Recorded with audited decisions. */
  region?: string;
  policyVersion?: string;
  people?: PeopleSource;
  /**
   * Where confirmed sightings are kept (descriptor sealed) so that the household can correct them; every
   * sighting gets an id whether or not it is kept. A failure to keep one is logged and the event still goes out.
   */
  sightings?: { record(sighting: SightingRecord): Promise<void> };
  /**
   * For every live frame the worker analysed of a camera this log watches, the boxes of its faces that
   * belong to nobody enrolled (bystanderBoxes; possibly none): its clips are blurred from these
   * (BystanderClipSink).
   */
  bystanders?: Pick<BystanderLog, 'watching' | 'record'>;
  /** Only frames in which motion was detected (default true): a still scene holds no new face. */
  onlyWithMotion?: boolean;
  /** Frames waiting for the worker before the oldest is dropped (default 2). */
  queueCapacity?: number;
  matcher?: MatcherOptions;
  auditIntervalMs?: number;
  /** Elapsed time for the audit interval and the worker's retry hold (default `monotonicMs`, src/clock.ts). */
  now?: () => number;
  /** While models are loaded, how often to check whether any camera may still use them (default 5 000 ms). */
  reconcileMs?: number;
  /** Starts a worker; tests may substitute. Default: a model worker thread hosting the `faces` nets. */
  createWorker?: () => FaceWorkerClient;
}

export interface FaceStageStats {
  /** The model backend in use while the models are loaded. */
  backend?: string;
  /** Calls made in the worker(s) since the stage was built: proof the nets did (not) run. */
  detectCalls: number;
  describeCalls: number;
  /** Frames offered with motion (or all frames, when onlyWithMotion is off). */
  framesOffered: number;
  /** Frames the gate refused (at offer, or again just before the worker). */
  framesGatedOut: number;
  /** Frames dropped because the worker was behind. */
  framesDropped: number;
  framesAnalysed: number;
  /** Whether a worker is running with its models loaded. */
  loaded: boolean;
  /** Workers started so far (lazy: 0 while no camera may use faces). */
  workersStarted: number;
  known: number;
  unknown: number;
  /** Wall time of the last frame in the worker, ms. */
  lastFrameMs?: number;
  errors: number;
  /** Snapshot frames checked for bystanders (bystanderBoxes), and the bystander faces found in them. */
  bystanderFrames: number;
  bystanderFaces: number;
  /** Frames looked at only around the people the objects analyser found (the rest: whole frames). */
  peopleCrops: number;
}

interface Job {
  cameraId: string;
  frame: AnalysisFrame;
  /** The motion event open on the camera when the frame was offered. */
  eventId: string | undefined;
  /** The people the objects analyser found in the frame: faces are looked for only around them. */
  people: readonly Box[] | undefined;
}

/**
 * The gated face stage shared by all cameras: motion frame → gate → bounded queue → one worker thread
 * (detect → quality → describe) → matcher → `face.known` / `face.unknown` on the bus. The worker and its
 * models are started on the first allowed frame and ended as soon as no camera may use faces, so a hub
 * with faces off never loads a model. Frames are copied when handed to the worker (the pipeline keeps
 * the original for its snapshot); descriptors come back transferred and stay in this process's RAM.
 */
export class FaceStage implements FrameAnalyser {
  readonly name = 'faces';
  /** Faces are looked for only on people when objects are on (FrameAnalyser.afterObjects). */
  readonly afterObjects = true;
  readonly #o: FaceStageOptions;
  readonly #now: () => number;
  readonly #queue: FrameQueue<Job>;
  readonly #matcher: FaceMatcher;
  #worker: FaceWorkerClient | undefined;
  /** Serialises worker work (frames, load, close) so a close never races a frame. */
  readonly #ops = new SerialOps((error) => {
    this.#stats.errors += 1;
    this.#o.logger.error({ err: error }, 'face stage: worker operation failed');
  });
  #loop: Promise<void> | undefined;
  /** Frames queued or being analysed. */
  #outstanding = 0;
  #closedCalls = { detectCalls: 0, describeCalls: 0 };
  #peopleRevision: number | undefined;
  /** The enrolled people last loaded into the matcher: bystanderBoxes compares against the same list. */
  #people: readonly EnrolledPerson[] = [];
  #stopped = false;
  /** After a worker failed to start (model files, backend), no new attempt before this time. */
  #retryAt = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #audit: RecognitionAudit | undefined;
  readonly #stats = { framesOffered: 0, framesGatedOut: 0, framesAnalysed: 0, workersStarted: 0, known: 0, unknown: 0, errors: 0, bystanderFrames: 0, bystanderFaces: 0, peopleCrops: 0, lastFrameMs: undefined as number | undefined };

  constructor(options: FaceStageOptions) {
    this.#o = options;
    this.#now = options.now ?? monotonicMs;
    this.#queue = new FrameQueue<Job>(options.queueCapacity ?? 2, () => {
      this.#outstanding -= 1;
    });
    this.#matcher = new FaceMatcher(options.matcher);
    this.#audit = options.audit === undefined ? undefined : new RecognitionAudit({ ...options, audit: options.audit, now: this.#now });
  }

  /** Nothing to take yet: the worker and its models start on the first frame the gate allows. */
  start(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Called by a camera pipeline for every analysed frame, after motion detection, with the id of the motion
   * event open on the camera (sightings carry it). Never blocks and never throws: a frame either is refused
   * by the gate, or queued (possibly pushing out the oldest waiting one).
   */
  offer({ cameraId, frame, motion, eventId, people }: AnalysedFrame): void {
    if (this.#stopped) return;
    if ((this.#o.onlyWithMotion ?? true) && !motion) return;
    this.#stats.framesOffered += 1;
    const decision = this.#ask(cameraId);
    if (!decision.allowed) {
      this.#stats.framesGatedOut += 1;
      if (this.#worker !== undefined) void this.reconcile();
      return;
    }
    this.#outstanding += 1;
    this.#queue.push({ cameraId, frame, eventId, people });
    this.#loop ??= this.#run();
  }

  /**
   * The boxes of the faces in `frame` that match nobody enrolled (see bystanderBoxes in bystander-blur.ts),
   * for blurring a snapshot before it leaves the hub. Asks the gate first (and again just before the
   * worker, like offer()): when it denies, resolves undefined and no model is called — without recognition
   * nothing tells the household from a bystander. Runs in the same worker, after the frames already queued
   * (one ≈ 450 ms each). Does not feed the matcher: no sighting or event comes from a snapshot check.
   * Rejects when the worker fails or the stage was stopped: the caller must not send the frame unchecked.
   */
  async bystanderBoxes(cameraId: string, frame: AnalysisFrame): Promise<FaceBox[] | undefined> {
    if (this.#stopped) throw new CamveilError('CAMVEIL_E_INTERNAL', 'the face stage is stopped', { where: 'faces' });
    if (!this.#ask(cameraId).allowed) return undefined;
    let result: { boxes: FaceBox[] | undefined } | undefined;
    let failure: unknown;
    await this.#ops.run(async () => {
      try {
        if (this.#stopped) throw new CamveilError('CAMVEIL_E_INTERNAL', 'the face stage is stopped', { where: 'faces' });
        if (!this.#allowedNow(cameraId)) {
          result = { boxes: undefined };
          return;
        }
        const worker = await this.#ensureWorker();
        await this.#refreshPeople();
        // Asked again right before the model: loading the worker can take seconds, and a withdrawal then wins.
        if (!this.#allowedNow(cameraId)) {
          result = { boxes: undefined };
          return;
        }
        const found = await worker.analyse(frame);
        const boxes = bystanderBoxes(found.faces, found.descriptors, this.#people, this.#o.matcher?.threshold ?? MATCH_THRESHOLD);
        this.#stats.bystanderFrames += 1;
        this.#stats.bystanderFaces += boxes.length;
        result = { boxes };
      } catch (error) {
        failure = error;
        throw error;
      }
    });
    if (result === undefined) throw failure instanceof Error ? failure : new CamveilError('CAMVEIL_E_INTERNAL', 'bystander check failed', { where: 'faces' });
    if (result.boxes === undefined) void this.reconcile();
    return result.boxes;
  }

  /** Ends the worker (models unloaded, memory freed) when no camera may use faces now. */
  reconcile(): Promise<void> {
    const anyAllowed = this.#o.cameraIds().some((id) => this.#allowedNow(id));
    if (anyAllowed || this.#worker === undefined) return this.#ops.settled;
    return this.#ops.run(() => this.#closeWorker('no camera may use faces'));
  }

  /** Resolves once every queued frame has been analysed (or refused). For tests and orderly stops. */
  async idle(): Promise<void> {
    while (this.#outstanding > 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await this.#ops.settled;
  }

  stats(): FaceStageStats {
    const w = this.#worker;
    const { lastFrameMs, ...rest } = this.#stats;
    return {
      ...rest,
      detectCalls: this.#closedCalls.detectCalls + (w?.detectCalls ?? 0),
      describeCalls: this.#closedCalls.describeCalls + (w?.describeCalls ?? 0),
      framesDropped: this.#queue.dropped,
      loaded: w !== undefined && w.alive,
      ...(w?.alive === true && w.backend !== undefined ? { backend: w.backend } : {}),
      ...(lastFrameMs === undefined ? {} : { lastFrameMs }),
    };
  }

  /** Drops waiting frames, ends the worker and forgets every template and sighting. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#queue.close();
    this.#outstanding = 0;
    await this.#loop;
    await this.#ops.run(() => this.#closeWorker('stopped'));
  }

  #ask(cameraId: string): GateDecision {
    let decision: GateDecision;
    try {
      decision = this.#o.gate.mayRecogniseFaces(cameraId);
    } catch {
      decision = { allowed: false, reason: 'gate-error' };
    }
    this.#audit?.decided(cameraId, decision);
    return decision;
  }

  /** The gate's answer now, without an audit record; a gate that throws means no. */
  #allowedNow(cameraId: string): boolean {
    try {
      return this.#o.gate.mayRecogniseFaces(cameraId).allowed;
    } catch {
      return false;
    }
  }

  async #run(): Promise<void> {
    for (;;) {
      const job = await this.#queue.next();
      if (job === undefined) return;
      try {
        // Asked again: a withdrawal while the frame waited must stop it before the nets see it.
        if (!this.#allowedNow(job.cameraId)) {
          this.#stats.framesGatedOut += 1;
          await this.reconcile();
          continue;
        }
        await this.#ops.run(() => this.#analyse(job));
      } finally {
        this.#outstanding -= 1;
      }
    }
  }

  async #analyse(job: Job): Promise<void> {
    if (this.#stopped) return;
    const worker = await this.#ensureWorker();
    await this.#refreshPeople();
    // The gate's word at the moment of the model call: the worker's load (seconds) or the people's
    // decryption may have spanned a withdrawal or a region change.
    if (!this.#allowedNow(job.cameraId)) {
      this.#stats.framesGatedOut += 1;
      void this.reconcile();
      return;
    }
    const { frame } = job;
    const result = await this.#detect(worker, job);
    this.#stats.framesAnalysed += 1;
    this.#stats.lastFrameMs = Math.round(result.ms);
    // Bystanders' boxes for clip blurring (faces that match nobody enrolled, or could not be described),
    // worked out only for cameras whose clips are blurred.
    const log = this.#o.bystanders;
    if (log?.watching(job.cameraId) !== undefined) log.record(job.cameraId, frame.at, bystanderBoxes(result.faces, result.descriptors, this.#people, this.#o.matcher?.threshold ?? MATCH_THRESHOLD));
    // The matcher's windows are intervals: elapsed time, so a clock set back does not mute a person for an hour.
    const sightings = this.#matcher.observe(job.cameraId, frame.elapsedMs ?? frame.at, result.descriptors);
    if (sightings.length === 0) return;
    // A withdrawal while the frame was in the worker: nothing from it is kept or reported.
    if (!this.#allowedNow(job.cameraId)) return;
    const ids = { cameraId: job.cameraId, at: frame.at, ...(job.eventId === undefined ? {} : { eventId: job.eventId }) };
    for (const s of sightings) {
      const sightingId = newSightingId();
      await this.#keep({ ...ids, sightingId, descriptor: s.descriptor, ...(s.kind === 'known' ? { label: 'known', personId: s.personId } : { label: 'unknown' }) });
      if (s.kind === 'known') {
        this.#stats.known += 1;
        this.#audit?.sighted(job.cameraId, s.personId);
        this.#o.bus.emit('face.known', { ...ids, personId: s.personId, distance: s.distance, sightingId });
      } else {
        this.#stats.unknown += 1;
        this.#audit?.sighted(job.cameraId);
        this.#o.bus.emit('face.unknown', { ...ids, sightingId });
      }
    }
  }

  /**
   * The worker's faces for a job: in the whole frame, or, when the objects analyser found people, only in
   * the area around them (peopleArea), with the boxes moved back into the frame's pixels.
   */
  async #detect(worker: FaceWorkerClient, job: Job): Promise<Awaited<ReturnType<FaceWorkerClient['analyse']>>> {
    const area = job.people === undefined ? undefined : peopleArea(job.people, job.frame);
    if (area === undefined) return worker.analyse(job.frame);
    this.#stats.peopleCrops += 1;
    const result = await worker.analyse(cropRgb(job.frame, area));
    for (const face of result.faces) face.box = { ...face.box, x: face.box.x + area.x, y: face.box.y + area.y };
    return result;
  }

  async #keep(sighting: SightingRecord): Promise<void> {
    try {
      await this.#o.sightings?.record(sighting);
    } catch (error) {
      this.#stats.errors += 1;
      this.#o.logger.warn({ camera: sighting.cameraId, err: error }, 'face stage: sighting not kept');
    }
  }

  async #ensureWorker(): Promise<FaceWorkerClient> {
    if (this.#worker !== undefined && !this.#worker.alive) await this.#closeWorker('worker died');
    if (this.#worker !== undefined) return this.#worker;
    if (this.#now() < this.#retryAt) throw new Error('face worker failed to start recently; not retrying yet');
    const worker = (this.#o.createWorker ?? (() => new FaceWorkerClient()))();
    this.#worker = worker;
    this.#stats.workersStarted += 1;
    this.#peopleRevision = undefined;
    try {
      await worker.load();
    } catch (error) {
      // A missing or tampered model file will not heal by itself: one attempt a minute, not one per frame.
      this.#retryAt = this.#now() + 60_000;
      await this.#closeWorker('load failed');
      throw error;
    }
    // A withdrawal or region change with no motion must still unload the models: frames alone would not notice.
    this.#timer = setInterval(() => void this.reconcile(), this.#o.reconcileMs ?? 5_000);
    this.#timer.unref();
    this.#o.logger.info({ workers: this.#stats.workersStarted }, 'face stage: models loaded');
    return worker;
  }

  async #refreshPeople(): Promise<void> {
    const source = this.#o.people;
    if (source === undefined) return;
    const revision = source.revision();
    if (revision === this.#peopleRevision) return;
    this.#people = await source.load();
    this.#matcher.setPeople(this.#people);
    this.#peopleRevision = revision;
  }

  async #closeWorker(why: string): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    // Ops are serialised, so no frame is in the worker now: its counters are final.
    this.#closedCalls.detectCalls += worker.detectCalls;
    this.#closedCalls.describeCalls += worker.describeCalls;
    this.#worker = undefined;
    clearInterval(this.#timer);
    this.#people = [];
    this.#matcher.setPeople([]);
    this.#matcher.forget();
    this.#peopleRevision = undefined;
    try {
      await worker.close();
    } finally {
      this.#o.logger.info({ why }, 'face stage: models unloaded');
    }
  }
}
