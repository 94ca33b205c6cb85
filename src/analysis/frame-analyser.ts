import type { AnalysisFrame } from '../cameras/frame.js';
import type { ObjectLabel } from '../policy/vocabulary.js';
import type { Box } from './box.js';

/**
 * The objects analyser's answer for one frame: what it found (possibly nothing); `'unavailable'` when it
 * cannot look (the gate refuses, the model cannot be loaded, the frame failed), and the frame goes on to
 * the other analysers as it would without objects; `'dropped'` when it was too far behind, and the frame
 * goes no further (the other analysers are no less busy).
 */
export type ObjectsAnswer = readonly DetectedObject[] | 'unavailable' | 'dropped';

/** One object the objects analyser found in a frame, after its thresholds, classes and zones. */
export interface DetectedObject {
  /** The group (`vehicle`). */
  label: ObjectLabel;
  /** The model's COCO class name (`car`). */
  cocoClass: string;
  score: number;
  /** In the analysis frame's pixels. */
  box: Box;
  /** The track this detection was matched to. */
  trackId?: string;
}

/** One analysed frame of a camera, as every analyser is offered it. */
export interface AnalysedFrame {
  cameraId: string;
  /**
   * The analysis frame with the camera's privacy masks already painted black: no analyser ever sees the
   * unmasked picture. Shared by every analyser of the camera and by its snapshot: read it, never write it;
   * an analyser that keeps or transfers the pixels copies them first.
   */
  frame: AnalysisFrame;
  /** The motion detector's verdict for this frame. */
  motion: boolean;
  /** The motion event open on the camera when the frame was analysed, if any. */
  eventId?: string;
  /** Where the motion detector saw change (analysis-frame pixels): the objects analyser looks around these. */
  motionRegions?: readonly Box[];
  /** Given only to the objects analyser: it calls this exactly once per frame offered (ObjectsAnswer). */
  onObjects?: (answer: ObjectsAnswer) => void;
  /**
   * Set when the frame reaches an analyser after the objects analyser: the boxes of the people in it. The
   * face stage then looks for faces only inside these (grown to hold the head).
   */
  people?: readonly Box[];
}

/**
 * Something that looks at every camera's masked frames after motion detection (faces today; objects next).
 * A camera pipeline offers each analysed frame to every analyser in its list, in order. An analyser owns its
 * worker and its queue, asks the gate itself for whatever it needs consent for, and answers on the bus.
 */
export interface FrameAnalyser {
  /** Names the analyser in logs and stats. */
  readonly name: string;
  /**
   * True for an analyser that looks only at people (the face stage): on a camera with objects on, it gets a
   * frame with motion only after the objects analyser, with the people due a look (`people`), and not at
   * all when there are none. Others get every frame at once, objects or not.
   */
  readonly afterObjects?: boolean;
  /** Takes its resources (a worker, models); may defer them to the first frame it is allowed to analyse. */
  start(): Promise<void>;
  /** Drops waiting frames and releases its resources. Frames offered after stop are ignored. */
  stop(): Promise<void>;
  /** Never blocks the pipeline and never throws: queues (or refuses) the frame and answers asynchronously. */
  offer(frame: AnalysedFrame): void;
  /** Settles when every frame offered so far has been analysed (or refused). */
  idle(): Promise<void>;
}
