import type { AnalysisFrame } from '../cameras/frame.js';

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
}

/**
 * Something that looks at every camera's masked frames after motion detection (faces today; objects next).
 * A camera pipeline offers each analysed frame to every analyser in its list, in order. An analyser owns its
 * worker and its queue, asks the gate itself for whatever it needs consent for, and answers on the bus.
 */
export interface FrameAnalyser {
  /** Names the analyser in logs and stats. */
  readonly name: string;
  /** Takes its resources (a worker, models); may defer them to the first frame it is allowed to analyse. */
  start(): Promise<void>;
  /** Drops waiting frames and releases its resources. Frames offered after stop are ignored. */
  stop(): Promise<void>;
  /** Never blocks the pipeline and never throws: queues (or refuses) the frame and answers asynchronously. */
  offer(frame: AnalysedFrame): void;
  /** Settles when every frame offered so far has been analysed (or refused). */
  idle(): Promise<void>;
}
