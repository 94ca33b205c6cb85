import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Box } from '../src/analysis/box.js';
import { FaceWorkerClient } from '../src/analysis/faces/face-worker-client.js';
import { PersonFaceLooks } from '../src/analysis/faces/face-looks.js';
import { cropRgb, peopleArea } from '../src/analysis/faces/people-area.js';
import { objectFilter } from '../src/analysis/objects/object-filter.js';
import { ObjectTracker } from '../src/analysis/objects/object-tracker.js';
import { objectsSchema } from '../src/config/schema.js';
import { MotionDetector } from '../src/analysis/motion.js';
import { planCrops } from '../src/analysis/objects/crop-planner.js';
import type { ObjectWorkerClient } from '../src/analysis/objects/object-worker-client.js';
import { findFfmpeg } from '../src/cameras/ffmpeg-binary.js';
import { ensureSampleVideo } from '../src/demo/sample-video.js';

/**
 * The full analysis of a motion frame, the two ways the face stage can run, on the sample camera video
 * (the demo's: face-api's demo photos held still, panned and cut) at 2 fps, 640×360:
 *
 * - today's faces-on-motion: every frame with motion goes whole to the face worker (detect + describe);
 * - objects + faces-on-people: every frame with motion goes to the object worker (the hub's path: motion
 *   regions → crops → the net), and to the face worker only when a person scored at least `minScore`,
 *   and then only the area around the people (peopleArea + cropRgb, as the face stage does).
 *
 * On frames where everyone is a person the second way can only cost more (the object call is added, the
 * face call stays); it saves where motion frames show no one. Hence two sets of frames (fullAnalysis).
 *
 * CPU is the Node process's (main thread and both worker threads) over each pass, per motion frame; each
 * way runs ROUNDS times, alternately, and the least CPU of the rounds is reported (the others carry other
 * processes' noise). Motion is the real MotionDetector's with the config defaults.
 */
const FPS = 2;
const WIDTH = 640;
const HEIGHT = 360;
const ROUNDS = 2;

/** A camera's objects settings at their defaults (the threshold is the caller's). */
const CAMERA_OBJECTS = objectsSchema.parse({});

export interface Frame {
  width: number;
  height: number;
  data: Buffer;
  regions: Box[];
  /** The frame's time in its video, ms (tracks and the per-track face looks follow it). */
  at: number;
}

/** The sample video's frames with motion, decoded by ffmpeg at 2 fps and 640×360, with their motion regions. */
export async function sampleVideoMotionFrames(): Promise<{ frames: Frame[]; decoded: number }> {
  const video = await ensureSampleVideo(fileURLToPath(new URL('../.cache/demo/', import.meta.url)));
  const { ffmpeg } = findFfmpeg();
  const out = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-i', video, '-vf', `fps=${FPS},scale=${WIDTH}:${HEIGHT}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    maxBuffer: 1 << 30,
  });
  if (out.status !== 0) throw new Error(`ffmpeg could not decode ${video}: ${out.stderr.toString()}`);
  const size = WIDTH * HEIGHT * 3;
  const detector = new MotionDetector({ width: WIDTH, height: HEIGHT, zones: [], privacyMasks: [], sensitivity: 0.5, minArea: 0.005 });
  const frames: Frame[] = [];
  const decoded = Math.floor(out.stdout.length / size);
  for (let i = 0; i < decoded; i++) {
    const data = out.stdout.subarray(i * size, (i + 1) * size);
    const result = await detector.update({ cameraId: 'bench', seq: i, at: (i * 1000) / FPS, width: WIDTH, height: HEIGHT, data });
    if (result.motion) frames.push({ width: WIDTH, height: HEIGHT, data, regions: result.regions, at: (i * 1000) / FPS });
  }
  return { frames, decoded };
}

interface Pass {
  cpuMs: number;
  wallMs: number;
  faceCalls: number;
  objectCalls: number;
  framesWithPeople: number;
}

async function facesOnMotion(faces: FaceWorkerClient, frames: readonly Frame[]): Promise<Pass> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const frame of frames) await faces.analyse(frame);
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0, faceCalls: frames.length, objectCalls: 0, framesWithPeople: 0 };
}

/**
 * The hub's chain (ObjectAnalyser, then the pipeline): crops → the object net → the camera's filter →
 * the tracker → the people due a look for faces (PersonFaceLooks: three looks per track, then one every 5 s)
 * → the face worker on the area around them.
 */
async function facesOnPeople(faces: FaceWorkerClient, objects: ObjectWorkerClient, frames: readonly Frame[], minScore: number): Promise<Pass> {
  let faceCalls = 0;
  let framesWithPeople = 0;
  const tracker = new ObjectTracker();
  const looks = new PersonFaceLooks();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const frame of frames) {
    const { detections } = await objects.detect(frame, planCrops(frame.regions, frame));
    const keep = objectFilter({ ...CAMERA_OBJECTS, minScore }, frame);
    const kept = detections.flatMap((d) => keep(d) ?? []);
    const people = tracker.update(frame.at, kept).objects.filter((o) => o.label === 'person');
    if (people.length > 0) framesWithPeople += 1;
    const area = peopleArea(looks.due(people, frame.at), frame);
    if (area === undefined) continue;
    faceCalls += 1;
    await faces.analyse(cropRgb(frame, area));
  }
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0, faceCalls, objectCalls: frames.length, framesWithPeople };
}

const perFrame = (p: Pass, frames: number): object => ({
  cpuMsPerFrame: Math.round(p.cpuMs / frames),
  wallMsPerFrame: Math.round(p.wallMs / frames),
  faceCalls: p.faceCalls,
  objectCalls: p.objectCalls,
  framesWithPeople: p.framesWithPeople,
});

/** Both ways over `frames`, with the face worker given; ROUNDS alternating passes, the least CPU of each kept. */
async function compare(faces: FaceWorkerClient, objects: ObjectWorkerClient, frames: readonly Frame[], minScore: number): Promise<object> {
  const today: Pass[] = [];
  const withObjects: Pass[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    today.push(await facesOnMotion(faces, frames));
    withObjects.push(await facesOnPeople(faces, objects, frames, minScore));
  }
  const least = (ps: Pass[]): Pass => ps.reduce((a, b) => (b.cpuMs < a.cpuMs ? b : a));
  const a = least(today);
  const b = least(withObjects);
  return { facesOnMotion: perFrame(a, frames.length), objectsAndFacesOnPeople: perFrame(b, frames.length), cpuRatio: Math.round((b.cpuMs / a.cpuMs) * 100) / 100 };
}

/**
 * Both ways over the sample video's motion frames (sampleVideoMotionFrames; every one of them shows
 * people: the video is made of group photos) and over `mixed`, frames with motion of which only some show people (the camera-scale frames of
 * the labelled set), with a loaded object worker; the face worker is started here.
 */
export async function fullAnalysis(
  objects: ObjectWorkerClient,
  minScore: number,
  sample: { frames: readonly Frame[]; decoded: number },
  mixed: readonly Frame[],
): Promise<object> {
  const { frames, decoded } = sample;
  const faces = new FaceWorkerClient();
  await faces.load();
  try {
    // A warm-up pass each way (first calls allocate), not measured.
    await facesOnMotion(faces, frames.slice(0, 3));
    await facesOnPeople(faces, objects, frames.slice(0, 3), minScore);
    return {
      minScore,
      sampleVideo: { frames: `${decoded} at ${FPS} fps, ${WIDTH}x${HEIGHT}, ${frames.length} with motion`, ...(await compare(faces, objects, frames, minScore)) },
      mixedScenes: { frames: `${mixed.length} camera-scale frames of the labelled set, each with motion`, ...(await compare(faces, objects, mixed, minScore)) },
    };
  } finally {
    await faces.close();
  }
}
