import type { EventBus } from '../events.js';
import type { ClipSummary } from '../recording/sink.js';

function clock(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}

function kilobytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.round(bytes / 1024)} kB`;
}

const ENDED_BY: Record<ClipSummary['endedBy'], string> = {
  'motion-stopped': 'motion stopped',
  'max-length': 'maximum clip length reached',
  'stream-lost': 'the stream was lost',
  shutdown: 'the gateway stopped',
  'memory-ceiling': 'the memory ceiling was reached',
};

/**
 * Turns gateway events into one readable line each, for `camveil demo`. Returns the function that
 * unsubscribes. Prints only what the demo camera does: no personal data exists in it to print.
 */
export function reportEvents(bus: EventBus, write: (line: string) => void, now: () => number = Date.now): () => void {
  const line = (at: number, cameraId: string, text: string) => write(`${clock(at)}  ${cameraId.padEnd(12)} ${text}`);
  const offs = [
    bus.on('camera.state', (e) => {
      const why = e.error === undefined ? '' : `: ${e.error.code} ${e.error.message}`;
      line(now(), e.cameraId, `camera ${e.health}${why}`);
    }),
    bus.on('motion.start', (e) => line(e.at, e.cameraId, `motion started (${(e.score * 100).toFixed(1)}% of the watched area changed)`)),
    bus.on('motion.end', (e) => line(e.at, e.cameraId, 'motion ended')),
    bus.on('object.confirmed', (e) =>
      line(e.at, e.cameraId, `${e.label} seen (${e.cocoClass}, score ${e.score.toFixed(2)}): alert sealed to the household`),
    ),
    bus.on('object.ended', (e) => line(now(), e.cameraId, `${e.label} gone`)),
    bus.on('snapshot.ready', (e) => line(now(), e.cameraId, `snapshot: ${e.width}x${e.height} JPEG, ${kilobytes(e.bytes)}, the event's best frame (${clock(e.at)})`)),
    bus.on('clip.ready', (e) =>
      line(now(), e.cameraId, `clip ready: ${(e.durationMs / 1000).toFixed(1)} s, ${kilobytes(e.bytes)}, ended because ${ENDED_BY[e.endedBy]}`),
    ),
    bus.on('object.stored', (e) => line(now(), e.cameraId, `sealed ${e.kind} → stored as ${e.objectId.slice(0, 8)}….age (${kilobytes(e.bytes)} of age ciphertext)`)),
    bus.on('upload.result', (e) => {
      if (e.result === 'uploaded') write(`${clock(now())}  ${'cloud'.padEnd(12)} received ${e.objectId.slice(0, 8)}…: ${kilobytes(e.bytes)} of ciphertext in ${e.ms} ms`);
      else write(`${clock(now())}  ${'cloud'.padEnd(12)} upload of ${e.objectId.slice(0, 8)}… ${e.result}${e.code === undefined ? '' : ` (${e.code})`}`);
    }),
    bus.on('mode.changed', (e) => write(`${clock(now())}  ${'hub'.padEnd(12)} mode: ${e.mode} (${e.reason})`)),
    bus.on('media.refused', (e) => line(now(), e.cameraId, `${e.kind} not kept: ${e.reason}`)),
    bus.on('frames.dropped', (e) => line(now(), e.cameraId, `analysis is behind: ${e.total} frames dropped so far`)),
  ];
  return () => offs.forEach((off) => off());
}

