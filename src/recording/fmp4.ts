import { CamveilError } from '../errors.js';

/**
 * Splits a fragmented MP4 byte stream (ffmpeg `-movflags +frag_keyframe+empty_moov+default_base_moof`)
 * into its initialisation segment (`ftyp`+`moov`) and its fragments (`moof`+`mdat`), without copying
 * media into anything but the buffers it hands on. Only the box headers and the small `moov`/`moof`
 * boxes are parsed: enough to learn each fragment's media duration.
 */
export interface Fmp4Handlers {
  onInit(init: Buffer): void;
  onFragment(fragment: Buffer, durationMs: number): void;
}

/** Largest box header we accept before the body: guards against a corrupt size field eating memory. */
const MAX_BOX_BYTES = 64 * 1024 * 1024;
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'mvex', 'moof', 'traf']);

interface Box {
  type: string;
  start: number;
  headerSize: number;
  size: number;
}

function readBoxes(buf: Buffer, from: number, to: number): Box[] {
  const boxes: Box[] = [];
  let offset = from;
  while (offset + 8 <= to) {
    let size = buf.readUInt32BE(offset);
    const type = buf.toString('latin1', offset + 4, offset + 8);
    let headerSize = 8;
    if (size === 1) {
      if (offset + 16 > to) break;
      size = Number(buf.readBigUInt64BE(offset + 8));
      headerSize = 16;
    }
    if (size < headerSize || offset + size > to) break;
    boxes.push({ type, start: offset, headerSize, size });
    offset += size;
  }
  return boxes;
}

function findPath(buf: Buffer, from: number, to: number, path: string[], out: Box[]): void {
  const [head, ...rest] = path;
  for (const box of readBoxes(buf, from, to)) {
    if (box.type !== head) continue;
    if (rest.length === 0) out.push(box);
    else if (CONTAINERS.has(box.type)) findPath(buf, box.start + box.headerSize, box.start + box.size, rest, out);
  }
}

function find(buf: Buffer, path: string[]): Box[] {
  const out: Box[] = [];
  findPath(buf, 0, buf.length, path, out);
  return out;
}

interface TrackTiming {
  timescale: number;
  defaultSampleDuration: number;
}

/** Reads each track's timescale (mdhd) and default sample duration (trex) from the init segment. */
function parseInit(init: Buffer): Map<number, TrackTiming> {
  const tracks = new Map<number, TrackTiming>();
  for (const trak of find(init, ['moov', 'trak'])) {
    const body = init.subarray(trak.start, trak.start + trak.size);
    const tkhd = find(body, ['trak', 'tkhd'])[0];
    const mdhd = find(body, ['trak', 'mdia', 'mdhd'])[0];
    if (tkhd === undefined || mdhd === undefined) continue;
    const tkhdVersion = body.readUInt8(tkhd.start + tkhd.headerSize);
    const trackId = body.readUInt32BE(tkhd.start + tkhd.headerSize + 4 + (tkhdVersion === 1 ? 16 : 8));
    const mdhdVersion = body.readUInt8(mdhd.start + mdhd.headerSize);
    const timescale = body.readUInt32BE(mdhd.start + mdhd.headerSize + 4 + (mdhdVersion === 1 ? 16 : 8));
    tracks.set(trackId, { timescale, defaultSampleDuration: 0 });
  }
  for (const trex of find(init, ['moov', 'mvex', 'trex'])) {
    const p = trex.start + trex.headerSize + 4;
    const track = tracks.get(init.readUInt32BE(p));
    if (track !== undefined) track.defaultSampleDuration = init.readUInt32BE(p + 8);
  }
  return tracks;
}

/** Media duration of a `moof` in ms: the longest of its track fragments. */
function fragmentDurationMs(moof: Buffer, tracks: Map<number, TrackTiming>): number {
  let longest = 0;
  for (const traf of find(moof, ['moof', 'traf'])) {
    const body = moof.subarray(traf.start, traf.start + traf.size);
    const tfhd = find(body, ['traf', 'tfhd'])[0];
    if (tfhd === undefined) continue;
    let p = tfhd.start + tfhd.headerSize;
    const tfhdFlags = body.readUInt32BE(p) & 0xffffff;
    const trackId = body.readUInt32BE(p + 4);
    const track = tracks.get(trackId);
    if (track === undefined || track.timescale === 0) continue;
    p += 8;
    if (tfhdFlags & 0x01) p += 8; // base-data-offset
    if (tfhdFlags & 0x02) p += 4; // sample-description-index
    let defaultDuration = track.defaultSampleDuration;
    if (tfhdFlags & 0x08) defaultDuration = body.readUInt32BE(p);
    let ticks = 0;
    for (const trun of find(body, ['traf', 'trun'])) {
      let q = trun.start + trun.headerSize;
      const flags = body.readUInt32BE(q) & 0xffffff;
      const count = body.readUInt32BE(q + 4);
      q += 8;
      if (flags & 0x001) q += 4; // data-offset
      if (flags & 0x004) q += 4; // first-sample-flags
      if (!(flags & 0x100)) {
        ticks += count * defaultDuration;
        continue;
      }
      const stride = 4 * [0x100, 0x200, 0x400, 0x800].filter((f) => flags & f).length;
      for (let i = 0; i < count && q + 4 <= trun.start + trun.size; i++, q += stride) ticks += body.readUInt32BE(q);
    }
    longest = Math.max(longest, (ticks * 1000) / track.timescale);
  }
  return longest;
}

/** Where each track's `tfdt` (baseMediaDecodeTime) sits in a fragment (`moof`+`mdat`), by track id. */
function decodeTimeFields(fragment: Buffer): Array<{ trackId: number; offset: number; wide: boolean }> {
  const moof = readBoxes(fragment, 0, fragment.length)[0];
  if (moof === undefined || moof.type !== 'moof') throw new CamveilError('CAMVEIL_E_CAMERA_PROTOCOL', 'fragmented MP4: a fragment does not start with moof');
  const fields: Array<{ trackId: number; offset: number; wide: boolean }> = [];
  for (const traf of readBoxes(fragment, moof.start + moof.headerSize, moof.start + moof.size).filter((b) => b.type === 'traf')) {
    const inner = readBoxes(fragment, traf.start + traf.headerSize, traf.start + traf.size);
    const tfhd = inner.find((b) => b.type === 'tfhd');
    const tfdt = inner.find((b) => b.type === 'tfdt');
    if (tfhd === undefined || tfdt === undefined) continue;
    // tfhd: version+flags, then track_ID; tfdt: version (1 = 64-bit time)+flags, then the time.
    const wide = fragment.readUInt8(tfdt.start + tfdt.headerSize) === 1;
    if (tfdt.size < tfdt.headerSize + 4 + (wide ? 8 : 4)) continue;
    fields.push({ trackId: fragment.readUInt32BE(tfhd.start + tfhd.headerSize + 4), offset: tfdt.start + tfdt.headerSize + 4, wide });
  }
  return fields;
}

/**
 * Each track's baseMediaDecodeTime (`tfdt`, in the track's timescale) in a fragment, by track id.
 * Throws CAMVEIL_E_CAMERA_PROTOCOL when the fragment does not start with a `moof`.
 */
export function fragmentDecodeTimes(fragment: Buffer): Map<number, bigint> {
  const times = new Map<number, bigint>();
  for (const f of decodeTimeFields(fragment)) {
    times.set(f.trackId, f.wide ? fragment.readBigUInt64BE(f.offset) : BigInt(fragment.readUInt32BE(f.offset)));
  }
  return times;
}

/**
 * The fragment with each track's baseMediaDecodeTime lowered by `origin` (that track's time at the clip's
 * first fragment), so that a clip cut from a long-running stream starts at time 0 without an edit list.
 * Returns the rewritten `moof` (a copy: the ring's fragment is shared with later clips) and the untouched
 * rest as a view, so the media bytes are not copied. Box sizes do not change, so trun data offsets hold.
 */
export function rebaseFragment(fragment: Buffer, origin: ReadonlyMap<number, bigint>): [Buffer, Buffer] {
  const moofSize = readBoxes(fragment, 0, fragment.length)[0]?.size ?? 0;
  const moof = Buffer.from(fragment.subarray(0, moofSize));
  for (const f of decodeTimeFields(fragment)) {
    const base = origin.get(f.trackId) ?? 0n;
    const time = f.wide ? moof.readBigUInt64BE(f.offset) : BigInt(moof.readUInt32BE(f.offset));
    // Decode times only grow along a stream; a fragment before the origin (never cut into a clip) stays at 0.
    const rebased = time > base ? time - base : 0n;
    if (f.wide) moof.writeBigUInt64BE(rebased, f.offset);
    else moof.writeUInt32BE(Number(rebased), f.offset);
  }
  return [moof, fragment.subarray(moofSize)];
}

export class Fmp4Splitter {
  readonly #handlers: Fmp4Handlers;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #initParts: Buffer[] = [];
  #tracks = new Map<number, TrackTiming>();
  #moof: Buffer | undefined;

  constructor(handlers: Fmp4Handlers) {
    this.#handlers = handlers;
  }

  /** Feeds bytes in any chunking. Throws CAMVEIL_E_CAMERA_PROTOCOL when the stream is not fragmented MP4. */
  push(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    for (;;) {
      const box = this.#nextBox();
      if (box === undefined) return;
      this.#handleBox(box);
    }
  }

  /** Forgets partial state, for a new ffmpeg process. */
  reset(): void {
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#initParts = [];
    this.#tracks = new Map();
    this.#moof = undefined;
  }

  #nextBox(): { type: string; bytes: Buffer } | undefined {
    if (this.#pendingBytes < 8) return undefined;
    // Only the header must be contiguous to learn the size; the body is joined once it is all here,
    // so small chunks do not make splitting quadratic.
    if ((this.#pending[0] as Buffer).length < 16 && this.#pending.length > 1) this.#pending = [Buffer.concat(this.#pending, this.#pendingBytes)];
    const head = this.#pending[0] as Buffer;
    let size = head.readUInt32BE(0);
    const type = head.toString('latin1', 4, 8);
    if (!/^[a-zA-Z0-9 ]{4}$/.test(type)) throw this.#protocolError(`not an MP4 box header (type bytes ${head.subarray(4, 8).toString('hex')})`);
    if (size === 1) {
      if (head.length < 16) return undefined;
      size = Number(head.readBigUInt64BE(8));
    }
    if (size < 8 || size > MAX_BOX_BYTES) throw this.#protocolError(`box "${type}" has an implausible size ${size}`);
    if (this.#pendingBytes < size) return undefined;
    const buf = this.#pending.length > 1 ? Buffer.concat(this.#pending, this.#pendingBytes) : head;
    const bytes = buf.subarray(0, size);
    const rest = buf.subarray(size);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#pendingBytes = rest.length;
    return { type, bytes };
  }

  #handleBox(box: { type: string; bytes: Buffer }): void {
    switch (box.type) {
      case 'ftyp':
        this.#initParts = [Buffer.from(box.bytes)];
        break;
      case 'moov': {
        const init = Buffer.concat([...this.#initParts, box.bytes]);
        this.#initParts = [];
        this.#tracks = parseInit(init);
        this.#handlers.onInit(init);
        break;
      }
      case 'moof':
        this.#moof = Buffer.from(box.bytes);
        break;
      case 'mdat': {
        if (this.#moof === undefined) break; // mdat without moof: not a fragment we can use
        const moof = this.#moof;
        this.#moof = undefined;
        this.#handlers.onFragment(Buffer.concat([moof, box.bytes]), fragmentDurationMs(moof, this.#tracks));
        break;
      }
      default:
        // styp, sidx, free, mfra …: not needed to rebuild a playable fragmented MP4.
        break;
    }
  }

  #protocolError(detail: string): CamveilError {
    return new CamveilError('CAMVEIL_E_CAMERA_PROTOCOL', `fragmented MP4 stream: ${detail}`);
  }
}

/**
 * The display size of the video track in an MP4 initialisation segment (`ftyp`+`moov`, or a whole clip
 * that starts with one): the width and height of the `tkhd` of the track whose handler is `vide`.
 * Undefined when there is no such track or the boxes are cut short.
 */
export function videoSizeOfInit(bytes: Buffer): { width: number; height: number } | undefined {
  const moov = readBoxes(bytes, 0, bytes.length).find((b) => b.type === 'moov');
  if (moov === undefined) return undefined;
  for (const trak of readBoxes(bytes, moov.start + moov.headerSize, moov.start + moov.size).filter((b) => b.type === 'trak')) {
    const inner = { from: trak.start + trak.headerSize, to: trak.start + trak.size };
    const hdlr: Box[] = [];
    findPath(bytes, inner.from, inner.to, ['mdia', 'hdlr'], hdlr);
    const handler = hdlr[0];
    // hdlr: header, version+flags (4), pre_defined (4), then the handler type.
    if (handler === undefined || handler.size < handler.headerSize + 12) continue;
    if (bytes.toString('latin1', handler.start + handler.headerSize + 8, handler.start + handler.headerSize + 12) !== 'vide') continue;
    const tkhd = readBoxes(bytes, inner.from, inner.to).find((b) => b.type === 'tkhd');
    // tkhd ends with width and height, 16.16 fixed point.
    if (tkhd === undefined || tkhd.size < tkhd.headerSize + 80) continue;
    const end = tkhd.start + tkhd.size;
    const width = Math.round(bytes.readUInt32BE(end - 8) / 65536);
    const height = Math.round(bytes.readUInt32BE(end - 4) / 65536);
    if (width > 0 && height > 0) return { width, height };
  }
  return undefined;
}
