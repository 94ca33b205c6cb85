import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CamveilError } from '../errors.js';

const require = createRequire(import.meta.url);

export interface FfmpegBinaries {
  ffmpeg: string;
  ffprobe: string;
  /** `system` when found on PATH (Debian's ffmpeg), `npm` when taken from `@ffmpeg-installer` / `@ffprobe-installer`. */
  origin: 'system' | 'npm';
}

function onPath(name: string, envPath: string | undefined): string | undefined {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function fromNpm(pkg: string): string | undefined {
  try {
    const mod = require(pkg) as { path?: string };
    return mod.path;
  } catch {
    return undefined;
  }
}

let cached: FfmpegBinaries | undefined;

/**
 * Finds ffmpeg and ffprobe: CAMVEIL_FFMPEG / CAMVEIL_FFPROBE when set, else the system's (preferred: kept
 * up to date by the distribution), else the static builds that npm installs.
 */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): FfmpegBinaries {
  if (cached !== undefined && env === process.env) return cached;
  const ffmpeg = env.CAMVEIL_FFMPEG ?? onPath('ffmpeg', env.PATH);
  const ffprobe = env.CAMVEIL_FFPROBE ?? onPath('ffprobe', env.PATH);
  let found: FfmpegBinaries | undefined;
  if (ffmpeg !== undefined && ffprobe !== undefined) {
    found = { ffmpeg, ffprobe, origin: 'system' };
  } else {
    const npmFfmpeg = fromNpm('@ffmpeg-installer/ffmpeg');
    const npmFfprobe = fromNpm('@ffprobe-installer/ffprobe');
    if (npmFfmpeg !== undefined && npmFfprobe !== undefined) found = { ffmpeg: npmFfmpeg, ffprobe: npmFfprobe, origin: 'npm' };
  }
  if (found === undefined) {
    throw new CamveilError(
      'CAMVEIL_E_FFMPEG_MISSING',
      'ffmpeg was not found: install it (apt-get install -y ffmpeg) or run npm ci to get the bundled build',
    );
  }
  if (env === process.env) cached = found;
  return found;
}

const majors = new Map<string, number>();

/**
 * The major version of an ffmpeg or ffprobe binary (`-version`). Static builds report a git revision
 * (`N-47683-g…`) instead of a number; those come from `@ffmpeg-installer`, whose build is from 2018 (4.x).
 */
export function ffmpegMajorVersion(ffmpeg: string): number {
  let major = majors.get(ffmpeg);
  if (major === undefined) {
    const out = spawnSync(ffmpeg, ['-hide_banner', '-version'], { encoding: 'utf8' }).stdout ?? '';
    const m = /(?:ffmpeg|ffprobe) version n?(\d+)\./.exec(out);
    major = m !== null ? Number(m[1]) : 4;
    majors.set(ffmpeg, major);
  }
  return major;
}
