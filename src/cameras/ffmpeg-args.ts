/**
 * Pure builders of ffmpeg command lines for camera ingest. One ffmpeg process per camera reads the main
 * stream (and the sub stream, when there is one) and writes two outputs:
 *  - stdout (`pipe:1`): the main stream's H.264 copied without re-encoding, as fragmented MP4 whose
 *    fragments start at keyframes: the recorder's ring buffer cuts clips on those boundaries;
 *  - fd 3 (`pipe:3`): the analysis stream decoded, resampled to a few fps and scaled (letterboxed) to a
 *    small size, as packed RGB24 frames of a fixed size.
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
   * stream, which is then re-encoded instead of copied (a mask cannot be drawn into compressed video).
   */
  maskBoxes?: readonly MaskBox[];
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

/** ffmpeg's drawbox filters painting the boxes black (sizes as fractions of the input, so any resolution works). */
export function maskFilter(boxes: readonly MaskBox[]): string {
  const f = (v: number) => v.toFixed(4);
  return boxes.map((b) => `drawbox=x=iw*${f(b.x)}:y=ih*${f(b.y)}:w=iw*${f(b.w)}:h=ih*${f(b.h)}:color=black:t=fill`).join(',');
}

/** The file descriptor the analysis frames are written to. */
export const FRAMES_FD = 3;
/** The file descriptor ffmpeg reads the main stream's source list from; the sub stream's is the next one. */
export const SOURCE_LIST_FD = 4;

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
export function analysisFilter(a: IngestArgsOptions['analysis']): string {
  return (
    `fps=${a.fps},scale=${a.width}:${a.height}:force_original_aspect_ratio=decrease,` +
    `pad=${a.width}:${a.height}:(ow-iw)/2:(oh-ih)/2,format=rgb24`
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
    '-map', `${analysisInput}:v:0`, '-an', '-sn', '-dn',
    '-vf', analysisFilter(o.analysis),
    '-f', 'rawvideo', '-pix_fmt', 'rgb24',
    `pipe:${FRAMES_FD}`,
  );
  return { args, sourceLists };
}

/** Bytes in one analysis frame. */
export function frameBytes(a: IngestArgsOptions['analysis']): number {
  return a.width * a.height * 3;
}
