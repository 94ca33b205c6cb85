/**
 * Pure builders of ffmpeg command lines for camera ingest. One ffmpeg process per camera reads the main
 * stream (and the sub stream, when there is one) and writes two outputs:
 *  - stdout (`pipe:1`): the main stream's H.264 copied without re-encoding, as fragmented MP4 whose
 *    fragments start at keyframes: the recorder's ring buffer cuts clips on those boundaries;
 *  - fd 3 (`pipe:3`): the analysis stream decoded, resampled to a few fps and scaled (letterboxed) to a
 *    small size, as packed RGB24 frames of a fixed size;
 *  - fd 6 (`pipe:6`), when asked for: the motion detector's input made from the same frames (split in one
 *    filter graph): the privacy masks' boxes painted black, downscaled to a tiny grey image and blurred. The
 *    hub's motion detection then costs ffmpeg a 640×360 → 160×90 scale instead of costing Node a sharp
 *    greyscale, downscale and blur per frame.
 * Nothing here touches the disk: both outputs are pipes into this process's memory. Network sources come
 * in through pipes too (fd 4 for the main stream, fd 5 for the sub stream): their URLs hold the camera's
 * password and must never be arguments (see source-pipe.ts).
 */
import { pipedSourceArgs, sourceListText } from './source-pipe.js';

export interface IngestInput {
  /**
   * What ffmpeg opens: an rtsp(s) URL (credentials included; never logged, and handed to ffmpeg through a
   * pipe, never as an argument) or a local file path (an argument: it holds no secret).
   */
  url: string;
  kind: 'rtsp' | 'file';
}

export interface IngestArgsOptions {
  main: IngestInput;
  /** A lower-resolution stream for analysis (Foscam `/videoSub`); the main stream is decoded when absent. */
  sub?: IngestInput;
  analysis: { fps: number; width: number; height: number };
  /** Socket I/O timeout for network sources, seconds. */
  ioTimeoutSeconds: number;
  /** Major version of the ffmpeg binary: option names differ between 4.x and 5.x and later. */
  ffmpegMajor: number;
  /**
   * Privacy masks, as their bounding boxes in normalised coordinates: painted black into the recorded
   * stream, which is then re-encoded instead of copied (a mask cannot be drawn into compressed video), and
   * into the motion grey output before it is downscaled.
   */
  maskBoxes?: readonly MaskBox[];
  /**
   * Asks for the motion detector's grey image as a second raw output on {@link MOTION_GREY_FD}: this size
   * (a downscale of the analysis frame, see MotionDetector's motionGreySpec), this Gaussian blur (0 = none).
   */
  motionGrey?: { width: number; height: number; blurSigma: number };
}

/** A rectangle in normalised frame coordinates (0..1). */
export interface MaskBox {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The bounding box of a polygon: painting it covers the polygon and never less. */
export function boundingBox(polygon: ReadonlyArray<readonly [number, number]>): MaskBox {
  const xs = polygon.map((p) => p[0]);
  const ys = polygon.map((p) => p[1]);
  const x = Math.min(...xs);
  const y = Math.min(...ys);
  return { x, y, w: Math.max(...xs) - x, h: Math.max(...ys) - y };
}

/**
 * ffmpeg's drawbox filters painting the boxes black (as fractions of the input, so any resolution works).
 * drawbox truncates its position and size to whole pixels, which could leave the last column or row of a
 * mask unpainted (x 0.127 + w 0.2 of 100 px painted 12..31, and pixel 32's centre is inside); so the edges
 * are rounded outward to 1e-4 and then to whole pixels: left and top down, right and bottom up.
 */
export function maskFilter(boxes: readonly MaskBox[]): string {
  const down = (v: number) => (Math.floor(v * 1e4 + 1e-6) / 1e4).toFixed(4);
  const up = (v: number) => (Math.ceil(v * 1e4 - 1e-6) / 1e4).toFixed(4);
  return boxes
    .map((b) => {
      const [x0, y0, x1, y1] = [down(b.x), down(b.y), up(b.x + b.w), up(b.y + b.h)];
      return `drawbox=x=floor(iw*${x0}):y=floor(ih*${y0}):w=ceil(iw*${x1})-floor(iw*${x0}):h=ceil(ih*${y1})-floor(ih*${y0}):color=black:t=fill`;
    })
    .join(',');
}

/** The file descriptor the analysis frames are written to. */
export const FRAMES_FD = 3;
/** The file descriptor ffmpeg reads the main stream's source list from; the sub stream's is the next one. */
export const SOURCE_LIST_FD = 4;
/** The file descriptor the motion grey images are written to (after the two source lists' fds). */
export const MOTION_GREY_FD = 6;

/** What one camera's ffmpeg is started with: its arguments, and the lists to write on its inherited pipes. */
export interface IngestCommand {
  args: string[];
  /** One `ffconcat` list per network input, for the child's file descriptor `fd` (holds credentials). */
  sourceLists: Array<{ fd: number; text: string }>;
}

function inputArgs(input: IngestInput, o: IngestArgsOptions, decoded: boolean, fd: number): string[] {
  // One decoding thread per camera: a hub runs several cameras, so parallelism comes from them, and a
  // single-threaded H.264 decoder spends about a quarter less CPU in total (1080p15: 0.83 s vs 1.08 s of
  // CPU per 24 s of video on the 2-core reference machine) by skipping frame-thread synchronisation.
  const threads = decoded ? ['-threads', '1'] : [];
  if (input.kind === 'file') {
    // A local video played as if it were a live camera: in real time, looped forever.
    return [...threads, '-re', '-stream_loop', '-1', '-i', input.url];
  }
  // The URL comes through the pipe on `fd`, with TCP interleaving (UDP RTP loses packets on busy Wi-Fi and
  // through NAT, and cameras all support it) and the socket timeout as options of that entry.
  return [...threads, ...pipedSourceArgs(fd, o)];
}

/** Letterboxes to exactly width×height so every frame has the same byte size, whatever the camera's aspect. */
function letterboxFilter(a: IngestArgsOptions['analysis']): string {
  return `fps=${a.fps},scale=${a.width}:${a.height}:force_original_aspect_ratio=decrease,pad=${a.width}:${a.height}:(ow-iw)/2:(oh-ih)/2`;
}

/** The analysis frames: letterboxed to the analysis size, RGB24. */
export function analysisFilter(a: IngestArgsOptions['analysis']): string {
  return `${letterboxFilter(a)},format=rgb24`;
}

/**
 * The mask boxes in the pixels of a `width × height` picture, rounded outward so that every pixel whose
 * centre is inside a mask polygon is inside its box; boxes that cover no pixel are left out (drawbox would
 * read a width or height of 0 as the whole picture).
 */
export function maskBoxesInPixels(boxes: readonly MaskBox[], width: number, height: number): Array<{ x: number; y: number; w: number; h: number }> {
  const out: Array<{ x: number; y: number; w: number; h: number }> = [];
  // Pixel i belongs to a polygon when its centre i + 0.5 is inside, so a margin far below half a pixel
  // keeps floating-point dust (0.3 * 640 = 192.00000000000003) from widening a box by a whole pixel.
  const down = (v: number) => Math.floor(v + 1e-6);
  const up = (v: number) => Math.ceil(v - 1e-6);
  for (const b of boxes) {
    const x = Math.max(0, down(b.x * width));
    const y = Math.max(0, down(b.y * height));
    const w = Math.min(width, up((b.x + b.w) * width)) - x;
    const h = Math.min(height, up((b.y + b.h) * height)) - y;
    if (w > 0 && h > 0) out.push({ x, y, w, h });
  }
  return out;
}

/**
 * From the letterboxed analysis picture (`analysis` size, before its RGB conversion) to the motion grey
 * image: mask boxes painted black at the analysis size (in pixels, so the motion image hides exactly what
 * the boxes cover of the analysis frame), then an area-averaging downscale to grey (swscale maps limited-
 * range luma to full-range grey), then the blur.
 */
export function motionGreyFilter(motion: NonNullable<IngestArgsOptions['motionGrey']>, analysis: IngestArgsOptions['analysis'], boxes: readonly MaskBox[]): string {
  const steps = maskBoxesInPixels(boxes, analysis.width, analysis.height).map((b) => `drawbox=x=${b.x}:y=${b.y}:w=${b.w}:h=${b.h}:color=black:t=fill`);
  steps.push(`scale=${motion.width}:${motion.height}:flags=area`, 'format=gray');
  if (motion.blurSigma > 0) steps.push(`gblur=sigma=${motion.blurSigma}`);
  return steps.join(',');
}

/**
 * The filter graph for both raw outputs, from the stream `input` (`0:v:0`): labelled `[analysis]` (RGB24)
 * and `[motion]` (grey). One fps filter and one letterbox, split after them, so frame n of each output is
 * the same picture: the ingest pairs the two outputs by position.
 */
export function analysisGraph(
  input: string,
  analysis: IngestArgsOptions['analysis'],
  motion: NonNullable<IngestArgsOptions['motionGrey']>,
  boxes: readonly MaskBox[],
): string {
  return (
    `[${input}]${letterboxFilter(analysis)},split=2[rgb_in][grey_in];` +
    `[rgb_in]format=rgb24[analysis];` +
    `[grey_in]${motionGreyFilter(motion, analysis, boxes)}[motion]`
  );
}

/** The full command for one camera's ffmpeg process: its arguments and the source lists for its pipes. */
export function buildIngestArgs(o: IngestArgsOptions): IngestCommand {
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-fflags', '+genpts'];
  const sourceLists: IngestCommand['sourceLists'] = [];
  const masked = (o.maskBoxes?.length ?? 0) > 0;
  const inputs: Array<[IngestInput, boolean]> = [[o.main, o.sub === undefined || masked]];
  if (o.sub !== undefined) inputs.push([o.sub, true]);
  inputs.forEach(([input, decoded], i) => {
    const fd = SOURCE_LIST_FD + i;
    args.push(...inputArgs(input, o, decoded, fd));
    if (input.kind === 'rtsp') sourceLists.push({ fd, text: sourceListText(input.url, o) });
  });
  const analysisInput = o.sub !== undefined ? 1 : 0;
  // Main stream, video only: audio is left out, since clips are evidence of motion and audio adds a
  // privacy burden (conversations) that the policies do not cover. Copied without re-encoding, unless the
  // camera has privacy masks: then they are painted in and the stream re-encoded, with a keyframe every
  // second so that clips still cut on one-second fragments. That costs CPU (docs/cameras.md).
  const main = masked
    ? ['-vf', `${maskFilter(o.maskBoxes!)},format=yuv420p`, '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-crf', '23', '-force_key_frames', 'expr:gte(t,n_forced*1)']
    : ['-c:v', 'copy'];
  args.push(
    '-map', '0:v:0', ...main, '-an', '-sn', '-dn',
    '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof',
    'pipe:1',
  );
  if (o.motionGrey === undefined) {
    args.push('-map', `${analysisInput}:v:0`, '-an', '-sn', '-dn', '-vf', analysisFilter(o.analysis), '-f', 'rawvideo', '-pix_fmt', 'rgb24', `pipe:${FRAMES_FD}`);
    return { args, sourceLists };
  }
  const graph = analysisGraph(`${analysisInput}:v:0`, o.analysis, o.motionGrey, o.maskBoxes ?? []);
  args.push(
    '-filter_complex', graph,
    '-map', '[analysis]', '-f', 'rawvideo', '-pix_fmt', 'rgb24', `pipe:${FRAMES_FD}`,
    '-map', '[motion]', '-f', 'rawvideo', '-pix_fmt', 'gray', `pipe:${MOTION_GREY_FD}`,
  );
  return { args, sourceLists };
}

/** Bytes in one analysis frame. */
export function frameBytes(a: IngestArgsOptions['analysis']): number {
  return a.width * a.height * 3;
}
