/** An 8-bit grey image, `width * height` bytes, row-major. */
export interface GreyImage {
  width: number;
  height: number;
  data: Buffer;
  /**
   * The motion detector's input, made by ffmpeg from the same decoded picture as `data` (the ingest's
   * second raw output): the letterboxed frame with the privacy masks' bounding boxes painted black,
   * downscaled to MotionDetector's grey size (motionGreySpec), converted to grey and blurred. The detector
   * compares it instead of making its own from `data`. Absent on frames not made by the ingest, and when
   * the ingest was told not to make it (motion off).
   */
  motionGrey?: GreyImage;
}

/** A decoded analysis frame: packed RGB24, `width * height * 3` bytes. Lives in memory only. */
export interface AnalysisFrame {
  cameraId: string;
  /** Wall-clock time the frame was received, ms since the epoch: what events and sightings are dated by. */
  at: number;
  /**
   * Elapsed time (src/clock.ts `monotonicMs`) when the frame was received: what intervals between frames
   * (post-roll, the face matcher's windows, the background's pace) are measured on, so a step of the wall
   * clock stretches none of them. Absent on frames not made by the ingest; `at` stands in then.
   */
  elapsedMs?: number;
  /** Increases by one per frame delivered by ffmpeg (dropped frames leave gaps). */
  seq: number;
  /**
   * The frame's media time: ms from the first frame of this connection to the camera. Analysis frames leave
   * ffmpeg's fps filter at a constant rate, so frame n of a connection is at n / fps whatever the hub's
   * load; unlike `at`, it does not move when the hub is slow to read the pipe.
   */
  mediaMs?: number;
  width: number;
  height: number;
  data: Buffer;
  /**
   * The motion detector's input, made by ffmpeg from the same decoded picture as `data` (the ingest's
   * second raw output): the letterboxed frame with the privacy masks' bounding boxes painted black,
   * downscaled to MotionDetector's grey size (motionGreySpec), converted to grey and blurred. The detector
   * compares it instead of making its own from `data`. Absent on frames not made by the ingest, and when
   * the ingest was told not to make it (motion off).
   */
  motionGrey?: GreyImage;
}
