import { CamveilError } from '../errors.js';

/**
 * How a camera URL reaches ffmpeg and ffprobe without ever being one of their arguments.
 *
 * A process's argument list is world-readable (`/proc/<pid>/cmdline`, `ps`), and a camera URL carries the
 * camera's password (`rtsp://admin:…@`). Hiding argv from other local users needs /proc mounted with
 * `hidepid`, which neither camveil nor its systemd unit can do. So the URL goes through a pipe instead:
 * ffmpeg opens `-f concat -i pipe:N`, and the hub writes a one-entry `ffconcat` list on that inherited file
 * descriptor, naming the URL and the RTSP options for it. The concat demuxer opens the listed URL as its
 * only input (with the outer input's protocol whitelist), so the argument list names a pipe and nothing else.
 * The environment is not used either.
 *
 * ffmpeg 5 and later read per-entry `option` lines (concatdec's `option` directive): RTSP over TCP and the
 * socket timeout reach the camera's input there, since options given on the command line would go to the
 * concat demuxer, not to the RTSP one. ffmpeg 4 (the 2018 static build from npm) has no `option`
 * directive: RTSP then negotiates its default transport (UDP, then TCP when the camera refuses UDP), so
 * its whitelist allows udp and rtp too, and a stall is caught by the ingest's own stall timer.
 */

/** Protocols the listed camera URL may use: RTSP over TCP, RTSP over TLS; nothing that reads local files. */
const WHITELIST_TCP = 'pipe,rtsp,rtsps,tcp,tls';
/** ffmpeg 4 cannot be told to use TCP (see above): it needs the RTP/UDP transport available. */
const WHITELIST_UDP = `${WHITELIST_TCP},udp,rtp`;

export interface SourcePipeOptions {
  /** Major version of the ffmpeg/ffprobe binary: only 5 and later understand per-entry options. */
  ffmpegMajor: number;
  /** Socket I/O timeout for the camera connection, seconds. */
  ioTimeoutSeconds: number;
}

/** Input options that make ffmpeg/ffprobe read its source from the list on `fd` (`pipe:0` is stdin). */
export function pipedSourceArgs(fd: number, o: Pick<SourcePipeOptions, 'ffmpegMajor'>): string[] {
  return ['-f', 'concat', '-safe', '0', '-protocol_whitelist', o.ffmpegMajor >= 5 ? WHITELIST_TCP : WHITELIST_UDP, '-i', `pipe:${fd}`];
}

/**
 * The `ffconcat` list naming one network source (credentials included: it is written to a pipe, never to
 * argv, a file or a log). Throws CAMVEIL_E_CAMERA_PROTOCOL for a URL with control characters, which could
 * end the list's line and add directives of its own.
 */
export function sourceListText(url: string, o: SourcePipeOptions): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (/[\u0000-\u001f\u007f]/.test(url)) {
    throw new CamveilError('CAMVEIL_E_CAMERA_PROTOCOL', 'the stream URL holds control characters');
  }
  const lines = ['ffconcat version 1.0', `file ${quote(url)}`];
  if (o.ffmpegMajor >= 5) {
    // ffmpeg 5 renamed the RTSP socket timeout from stimeout to timeout; only 5+ reaches this line.
    lines.push('option rtsp_transport tcp', `option timeout ${Math.round(o.ioTimeoutSeconds * 1e6)}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Quotes a token the way ffconcat's parser (av_get_token) reads it: inside single quotes nothing is
 * special, and a single quote is written as `'\''` (close, escaped quote, reopen).
 */
function quote(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}
