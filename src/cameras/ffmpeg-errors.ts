import { CamveilError, type ErrorCode } from '../errors.js';
import { redactText } from '../redact.js';

/**
 * Turns what ffmpeg/ffprobe print on stderr when a source fails into a stable error code and a message a
 * person can act on. Patterns are ffmpeg's own messages (libavformat rtsp.c, http.c, network errors);
 * the first match wins, so specific ones come first.
 */
const RULES: Array<{ pattern: RegExp; code: ErrorCode; message: string }> = [
  { pattern: /\b401\b|Unauthorized|authorization failed|\b403\b|Forbidden/i, code: 'CAMVEIL_E_CAMERA_AUTH', message: 'the camera refused the credentials (check the user name and password)' },
  { pattern: /Connection refused/i, code: 'CAMVEIL_E_CAMERA_UNREACHABLE', message: 'connection refused: nothing listens on that host and port' },
  { pattern: /No route to host|Network is unreachable|Host is unreachable/i, code: 'CAMVEIL_E_CAMERA_UNREACHABLE', message: 'no route to the camera host' },
  { pattern: /timed out/i, code: 'CAMVEIL_E_CAMERA_UNREACHABLE', message: 'the camera did not answer in time' },
  { pattern: /Name or service not known|Temporary failure in name resolution|No address associated|Failed to resolve hostname/i, code: 'CAMVEIL_E_CAMERA_UNREACHABLE', message: 'the camera host name does not resolve' },
  { pattern: /Connection reset/i, code: 'CAMVEIL_E_CAMERA_UNREACHABLE', message: 'the camera closed the connection' },
  { pattern: /\b404\b|Not Found|Server returned 4\d\d/i, code: 'CAMVEIL_E_CAMERA_NOT_VIDEO', message: 'the server answers but has no stream at that path' },
  {
    pattern: /Invalid data found when processing input|does not contain any stream|matches no streams|Could not find codec|Unsupported|Protocol not found|Invalid argument|\b400\b|\b405\b|\b415\b|\b454\b|\b461\b/i,
    code: 'CAMVEIL_E_CAMERA_NOT_VIDEO',
    message: 'the source answers but is not a usable video stream',
  },
  { pattern: /No such file or directory/i, code: 'CAMVEIL_E_CAMERA_NOT_VIDEO', message: 'the video file does not exist' },
];

/** The first rule matching what ffmpeg or ffprobe printed: its stable code and a message a person can act on. */
export function matchFfmpegFailure(stderr: string): { code: ErrorCode; message: string } | undefined {
  return RULES.find((rule) => rule.pattern.test(stderr));
}

/** Keeps the last lines of a process's stderr (bounded) for classification after it exits. */
export class StderrTail {
  #text = '';
  constructor(private readonly limit = 8192) {}
  push(chunk: Buffer | string): void {
    this.#text = (this.#text + chunk.toString()).slice(-this.limit);
  }
  get text(): string {
    return this.#text;
  }
  clear(): void {
    this.#text = '';
  }
}

/** What the ingest knows about a failed run beyond its stderr. */
export interface FailureContext {
  /** Media arrived before the run ended: the stream was lost, whatever ffmpeg says about why. */
  streamed?: boolean;
  /** The run lasted at least ffmpeg's socket timeout and nothing arrived: the camera may be frozen. */
  lastedIoTimeout?: boolean;
}

/** ffmpeg's words for its socket timeout: RTSP reports a reply that never came as "Invalid data" (ffmpeg 5.1). */
const SILENCE = /timed out|Invalid data found when processing input/i;
/** A TCP connect that timed out: nothing accepted the connection, so the host is unreachable. */
const CONNECT_TIMEOUT = /Connection to tcp:\/\/\S+ failed: Connection timed out/i;

/**
 * Classifies a failed ffmpeg/ffprobe run. `where` names the camera (id or redacted URL). The detail quoted
 * from stderr is redacted: ffmpeg echoes the input URL, which may hold credentials.
 *
 * A frozen camera (it keeps accepting connections, the kernel does that for it, but answers nothing) makes
 * ffmpeg 5 time out waiting for the RTSP reply and then say "Invalid data found when processing input",
 * the same words it uses for a server that answered with something that is not RTSP. The `context` tells
 * them apart: a stream that was flowing, or a run that lasted the whole socket timeout without a byte, is
 * CAMVEIL_E_STREAM_LOST (retried as `reconnecting`), never CAMERA_NOT_VIDEO (`failed`).
 */
export function classifyFfmpegFailure(stderr: string, where: string, context: FailureContext = {}): CamveilError {
  if (context.streamed === true) {
    return new CamveilError('CAMVEIL_E_STREAM_LOST', `${where}: the stream ended (${lastLine(stderr)})`, { where });
  }
  if (context.lastedIoTimeout === true && SILENCE.test(stderr) && !CONNECT_TIMEOUT.test(stderr)) {
    return new CamveilError('CAMVEIL_E_STREAM_LOST', `${where}: the camera accepts connections but does not answer (frozen?)`, { where });
  }
  const rule = matchFfmpegFailure(stderr);
  if (rule !== undefined) return new CamveilError(rule.code, `${where}: ${rule.message}`, { where });
  return new CamveilError('CAMVEIL_E_STREAM_LOST', `${where}: the stream ended (${lastLine(stderr)})`, { where });
}

/** The last line ffmpeg printed, redacted (it may echo the URL with credentials) and bounded. */
function lastLine(stderr: string): string {
  return redactText(stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-1)[0] ?? 'no output').slice(0, 200);
}
