import type { FaceBox } from '../analysis/faces/face-engine.js';

/**
 * The pure part of bystander blurring in clips: which rectangles of the main stream are pixelated from
 * when to when, as an ffmpeg filtergraph. Snapshots are blurred in memory (bystander-blur.ts); a clip is
 * compressed video, so its frames are decoded, pixelated by ffmpeg and re-encoded (clip-blur.ts runs that).
 */

/** A rectangle to pixelate in main-stream pixels, between two times measured from the clip's first frame. */
export interface TimedRegion {
  fromMs: number;
  toMs: number;
  box: FaceBox;
}

/** Width and height of a picture, in pixels. */
export interface FrameSize {
  width: number;
  height: number;
}

/** What the face stage saw in one analysed frame: the bystanders' boxes in analysis-frame pixels. */
export interface FaceObservation {
  /** Time of the analysed frame, ms since the epoch. */
  at: number;
  boxes: readonly FaceBox[];
}

export interface ObservationOptions {
  /** Wall-clock time of the clip's first frame (ClipMeta.startedAt), ms since the epoch. */
  clipStartMs: number;
  /** The analysis frame the boxes are in (letterboxed from the main stream, see analysisFilter). */
  analysisSize: FrameSize;
  mainSize: FrameSize;
  /**
   * How long before and after an analysed frame its faces stay covered. Faces are only known in analysed
   * frames (2 fps by default, one every 500 ms); 750 ms covers the frames in between with a margin for a
   * late or dropped analysis frame. Default DEFAULT_HOLD_MS.
   */
  holdMs?: number;
}

export const DEFAULT_HOLD_MS = 750;

/**
 * At most this many pixelated rectangles per clip. Each one is a crop, two small scales and an overlay
 * per frame while it is active; the graph (and ffmpeg's work) must stay bounded whatever the clip holds.
 * Beyond the cap, regions are merged into their union in space and time, which covers more, never less.
 */
export const MAX_CLIP_BLUR_REGIONS = 8;

export interface ClipBlurFilterOptions {
  /** Added to each side of a box as a fraction of its size, as for snapshots (bystander-blur.ts). Default 0.1. */
  grow?: number;
  /** Cells along the longer side of a rectangle after pixelation, as for snapshots. Default 8. */
  cells?: number;
  /** Default MAX_CLIP_BLUR_REGIONS. */
  maxRegions?: number;
}

/** The filtergraph reads the first input's video and writes this label; the runner maps it. */
export const CLIP_BLUR_OUTPUT = 'blurred';

/** A rectangle with even corners (yuv420p chroma is 2×2: odd edges would smear half a chroma sample) in ms. */
export interface PlannedRegion {
  fromMs: number;
  toMs: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

const evenDown = (v: number): number => 2 * Math.floor(v / 2);
const evenUp = (v: number): number => 2 * Math.ceil(v / 2);

/** A box grown by `grow`, clamped to the frame and rounded outwards to even pixels; undefined when nothing is left. */
function planBox(r: TimedRegion, grow: number, size: FrameSize): PlannedRegion | undefined {
  const { box } = r;
  const values = [box.x, box.y, box.width, box.height, r.fromMs, r.toMs];
  if (!values.every(Number.isFinite) || box.width <= 0 || box.height <= 0 || r.toMs <= r.fromMs || r.toMs <= 0) return undefined;
  const x0 = Math.max(0, evenDown(box.x - grow * box.width));
  const y0 = Math.max(0, evenDown(box.y - grow * box.height));
  const x1 = Math.min(evenDown(size.width), evenUp(box.x + (1 + grow) * box.width));
  const y1 = Math.min(evenDown(size.height), evenUp(box.y + (1 + grow) * box.height));
  if (!(x1 > x0 && y1 > y0)) return undefined;
  return { fromMs: Math.max(0, r.fromMs), toMs: r.toMs, x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

function union(a: PlannedRegion, b: PlannedRegion): PlannedRegion {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return {
    fromMs: Math.min(a.fromMs, b.fromMs),
    toMs: Math.max(a.toMs, b.toMs),
    x,
    y,
    width: Math.max(a.x + a.width, b.x + b.width) - x,
    height: Math.max(a.y + a.height, b.y + b.height) - y,
  };
}

const touchInTime = (a: PlannedRegion, b: PlannedRegion): boolean => a.fromMs <= b.toMs && b.fromMs <= a.toMs;
const overlapInSpace = (a: PlannedRegion, b: PlannedRegion): boolean =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
/** Pixel-milliseconds a region covers: what merging two regions costs in needlessly pixelated picture. */
const extent = (r: PlannedRegion): number => r.width * r.height * (r.toMs - r.fromMs);

/**
 * The rectangles to pixelate: each region grown, clamped and rounded to even pixels (empty ones dropped),
 * then merged — first every two that overlap both in time and in space (the same face seen in
 * consecutive analysed frames becomes one rectangle), then, while more than `maxRegions` are left, the
 * two whose union adds the least pixel-time. Every pixel and moment covered by an input region stays
 * covered. Pure; exported for tests.
 */
export function planClipBlur(regions: readonly TimedRegion[], size: FrameSize, opts: ClipBlurFilterOptions = {}): PlannedRegion[] {
  const grow = opts.grow ?? 0.1;
  const max = Math.max(1, Math.floor(opts.maxRegions ?? MAX_CLIP_BLUR_REGIONS));
  let planned = regions.map((r) => planBox(r, grow, size)).filter((r) => r !== undefined);
  for (let merged = true; merged; ) {
    merged = false;
    outer: for (let i = 0; i < planned.length; i++) {
      for (let j = i + 1; j < planned.length; j++) {
        const a = planned[i]!;
        const b = planned[j]!;
        if (touchInTime(a, b) && overlapInSpace(a, b)) {
          planned = [...planned.slice(0, i), union(a, b), ...planned.slice(i + 1, j), ...planned.slice(j + 1)];
          merged = true;
          break outer;
        }
      }
    }
  }
  while (planned.length > max) {
    let best = { i: 0, j: 1, cost: Infinity };
    for (let i = 0; i < planned.length; i++) {
      for (let j = i + 1; j < planned.length; j++) {
        const cost = extent(union(planned[i]!, planned[j]!)) - extent(planned[i]!) - extent(planned[j]!);
        if (cost < best.cost) best = { i, j, cost };
      }
    }
    const u = union(planned[best.i]!, planned[best.j]!);
    planned = [...planned.filter((_, k) => k !== best.i && k !== best.j), u];
  }
  return planned.sort((a, b) => a.fromMs - b.fromMs || a.y - b.y || a.x - b.x);
}

const seconds = (ms: number): string => (ms / 1000).toFixed(3);

/**
 * The ffmpeg filtergraph (for `-filter_complex`) that pixelates the regions of a clip of `size` while each
 * is active, or undefined when nothing is left to blur: the caller then sends the clip as it is, without
 * re-encoding. The graph reads `[0:v]` and writes `[blurred]` (CLIP_BLUR_OUTPUT) in yuv420p.
 *
 * Times are counted from the clip's first frame. A clip cut from the camera's stream carries the stream's
 * timestamps, not zero; ffmpeg shifts its input to zero already (unless run with -copyts), and the graph's
 * leading `setpts=PTS-STARTPTS` keeps that true whatever the options. Each rectangle is cropped from
 * the original frame, scaled down to `cells` cells (area average) and back up (nearest neighbour), as the
 * snapshot pixelation does, and laid over the frame only while `between(t,from,to)`.
 */
export function clipBlurFilter(regions: readonly TimedRegion[], size: FrameSize, opts: ClipBlurFilterOptions = {}): string | undefined {
  const planned = planClipBlur(regions, size, opts);
  if (planned.length === 0) return undefined;
  const cells = Math.max(1, Math.round(opts.cells ?? 8));
  const n = planned.length;
  const parts = [`[0:v]setpts=PTS-STARTPTS,format=yuv420p,split=${n + 1}[base]${planned.map((_, i) => `[src${i}]`).join('')}`];
  planned.forEach((r, i) => {
    const scale = cells / Math.max(r.width, r.height);
    const cw = Math.max(1, Math.round(r.width * scale));
    const ch = Math.max(1, Math.round(r.height * scale));
    parts.push(`[src${i}]crop=${r.width}:${r.height}:${r.x}:${r.y},scale=${cw}:${ch}:flags=area,scale=${r.width}:${r.height}:flags=neighbor[pix${i}]`);
  });
  planned.forEach((r, i) => {
    const from = i === 0 ? '[base]' : `[ov${i - 1}]`;
    const to = i === n - 1 ? '[last]' : `[ov${i}]`;
    parts.push(`${from}[pix${i}]overlay=x=${r.x}:y=${r.y}:enable='between(t,${seconds(r.fromMs)},${seconds(r.toMs)})'${to}`);
  });
  parts.push(`[last]format=yuv420p[${CLIP_BLUR_OUTPUT}]`);
  return parts.join(';');
}

/**
 * Timed regions in main-stream pixels from the face stage's observations: every box is held from
 * `at − holdMs` to `at + holdMs` (relative to the clip's start), and mapped from the letterboxed analysis
 * frame back to the main stream (the letterbox bars removed, then scaled). Observations whose hold ends
 * before the clip starts are left out. Pure.
 */
export function regionsFromObservations(observations: readonly FaceObservation[], opts: ObservationOptions): TimedRegion[] {
  const hold = opts.holdMs ?? DEFAULT_HOLD_MS;
  const { analysisSize: a, mainSize: m } = opts;
  // analysisFilter scales with force_original_aspect_ratio=decrease and pads the rest evenly on both sides.
  const scale = Math.min(a.width / m.width, a.height / m.height);
  const padX = (a.width - m.width * scale) / 2;
  const padY = (a.height - m.height * scale) / 2;
  const out: TimedRegion[] = [];
  for (const o of observations) {
    const t = o.at - opts.clipStartMs;
    if (t + hold <= 0) continue;
    for (const b of o.boxes) {
      out.push({
        fromMs: Math.max(0, t - hold),
        toMs: t + hold,
        box: { x: (b.x - padX) / scale, y: (b.y - padY) / scale, width: b.width / scale, height: b.height / scale },
      });
    }
  }
  return out;
}
