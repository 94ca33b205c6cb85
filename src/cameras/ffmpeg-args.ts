/**
 * Pure builders of ffmpeg command lines for camera ingest. One ffmpeg process per camera reads the main
 * stream (and the sub stream, when there is one) and writes two outputs:
 *  - stdout (`pipe:1`): the main stream's H.264 copied without re-encoding, as fragmented MP4 whose
 *    fragments start at keyframes: the recorder's ring buffer cuts clips on those boundaries;
 *  - fd 3 (`pipe:3`): the analysis stream decoded, resampled to a few fps and scaled (letterboxed) to a
 *    small size, as packed RGB24 frames of a fixed size.
 * Nothing here touches the disk: both outputs are pipes into this process's memory.
 */

export interface IngestInput {
  /** What ffmpeg opens: an rtsp(s) URL (credentials included; never logged) or a local file path. */
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
}

/** The file descriptor the analysis frames are written to. */
export const FRAMES_FD = 3;

function inputArgs(input: IngestInput, o: IngestArgsOptions, decoded: boolean): string[] {
  // One decoding thread per camera: a hub runs several cameras, so parallelism comes from them, and a
  // single-threaded H.264 decoder spends about a quarter less CPU in total (1080p15: 0.83 s vs 1.08 s of
  // CPU per 24 s of video on the 2-core reference machine) by skipping frame-thread synchronisation.
  const threads = decoded ? ['-threads', '1'] : [];
  if (input.kind === 'file') {
    // A local video played as if it were a live camera: in real time, looped forever.
    return [...threads, '-re', '-stream_loop', '-1', '-i', input.url];
  }
  // TCP interleaving: UDP RTP loses packets on busy Wi-Fi and through NAT, and cameras all support it.
  // ffmpeg 5 renamed the RTSP socket timeout from -stimeout to -timeout (in 4.x -timeout means "listen").
  const timeoutOption = o.ffmpegMajor >= 5 ? '-timeout' : '-stimeout';
  return [...threads, '-rtsp_transport', 'tcp', timeoutOption, String(Math.round(o.ioTimeoutSeconds * 1e6)), '-i', input.url];
}

/** Letterboxes to exactly width×height so every frame has the same byte size, whatever the camera's aspect. */
export function analysisFilter(a: IngestArgsOptions['analysis']): string {
  return (
    `fps=${a.fps},scale=${a.width}:${a.height}:force_original_aspect_ratio=decrease,` +
    `pad=${a.width}:${a.height}:(ow-iw)/2:(oh-ih)/2,format=rgb24`
  );
}

/** The full argument list for one camera's ffmpeg process. */
export function buildIngestArgs(o: IngestArgsOptions): string[] {
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-fflags', '+genpts'];
  args.push(...inputArgs(o.main, o, o.sub === undefined));
  if (o.sub !== undefined) args.push(...inputArgs(o.sub, o, true));
  const analysisInput = o.sub !== undefined ? 1 : 0;
  args.push(
    // Main stream: copied, video only. Audio is left out: clips are evidence of motion, and audio adds a
    // privacy burden (conversations) that the policies do not cover.
    '-map', '0:v:0', '-c:v', 'copy', '-an', '-sn', '-dn',
    '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof',
    'pipe:1',
    '-map', `${analysisInput}:v:0`, '-an', '-sn', '-dn',
    '-vf', analysisFilter(o.analysis),
    '-f', 'rawvideo', '-pix_fmt', 'rgb24',
    `pipe:${FRAMES_FD}`,
  );
  return args;
}

/** Bytes in one analysis frame. */
export function frameBytes(a: IngestArgsOptions['analysis']): number {
  return a.width * a.height * 3;
}
