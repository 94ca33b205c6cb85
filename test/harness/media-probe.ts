import { spawnSync } from 'node:child_process';
import { findFfmpeg } from '../../src/cameras/ffmpeg-binary.js';

export interface ProbedMedia {
  codec: string;
  width: number;
  height: number;
  /** Presentation time of the first and last video packets, seconds. */
  firstPts: number;
  lastPts: number;
  packets: number;
}

/** Reads an in-memory MP4 with ffprobe through stdin (never a file) and reports its video packets. */
export function probeMediaBuffer(bytes: Buffer): ProbedMedia {
  const { ffprobe } = findFfmpeg();
  const result = spawnSync(
    ffprobe,
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height:packet=pts_time', '-of', 'json', '-i', 'pipe:0'],
    { input: bytes, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) throw new Error(`ffprobe cannot read the clip: ${result.stderr}`);
  const out = JSON.parse(result.stdout) as { streams: Array<{ codec_name: string; width: number; height: number }>; packets: Array<{ pts_time?: string }> };
  const stream = out.streams[0];
  if (stream === undefined) throw new Error('the clip holds no video stream');
  const pts = out.packets.map((p) => Number(p.pts_time)).filter((t) => Number.isFinite(t));
  return { codec: stream.codec_name, width: stream.width, height: stream.height, firstPts: Math.min(...pts), lastPts: Math.max(...pts), packets: pts.length };
}
