import { basename } from 'node:path';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { CamveilError } from '../../errors.js';
import type { VerifiedModels } from '../model-files.js';
import { suppressDuplicates, type Detection, type SuppressOptions } from './suppress-duplicates.js';

/** The graph and weights files of MB3-CenterNet in `@vladmandic/human`'s model folder (models/manifest.json, `nets.objects`). */
export const CENTERNET_GRAPH = 'centernet.json';
const INPUT = 'tower_0/images';
const OUTPUT = 'tower_0/detections';
/** The side the graph was exported for: its shape constants below hold 512's values. */
export const NATIVE_SIDE = 512;
/** COCO's 80 classes: the net's class index is 0-based into them (0 = person). */
export const CLASS_COUNT = 80;

/**
 * The square input sides the net runs at. The graph is exported for 512 × 512, but MobileNetV3 and the
 * CenterNet head are convolutions: only five constants in the weights (the three upsampling sizes, S/16,
 * S/8 and S/4, and the heat map's side S/4 and cell count (S/4)², which decode the peaks) and the input's
 * declared shape tie it to 512. With those set for S (a multiple of 32) the same weights run at S.
 *
 * Measured 2026-12-05 on the wasm backend with SIMD, one thread, on 640×360 frames, bare model calls
 * interleaved, 2 cores shared with other work (load 3–5): 60 ms a call at 320, 85 at 384, 117 at 448, 151
 * at 512 (about in proportion to the pixels). Persons found (duplicates merged) on face-api's six demo
 * photos (22 people), at score ≥ 0.4 / ≥ 0.3:
 *   whole photo squared:        256: 12/18  320: 15/19  384: 16/20  448: 18/20  512: 14/19
 *   photo 120 px high in a 640×360 frame, a 240 px crop around it:
 *                               256: 10/18  320: 12/21  384: 13/21  448: 15/20  512: 14/19
 * At 320 scores run 0.05–0.1 below 512 on the small case; 256 loses more, so it is not offered. At the
 * operating threshold (0.3) 384 finds as many people as 448 and more than 512, in about 0.7× 448's time, so
 * the hub stops at 384: crops up to 320 px run at 320, larger ones (the full-frame pass among them) are
 * shrunk to 384. `bench -- objects`, 448 → 384: the full analysis per motion frame on the sample video went
 * from 1.07× to 0.91× faces-on-motion's CPU, person AP50 on whole images from 0.92 to 0.95, camera-scale
 * figures unchanged; animals on whole images fell (AP50 0.84 → 0.71: the set's 2:1 Muybridge strips shrink
 * to small cats), which concerns still photos, not camera frames' crops. The benchmark's bare-model
 * baseline runs at 512.
 */
export const MODEL_SIDES = [320, 384] as const;
export type ModelSide = (typeof MODEL_SIDES)[number];

/** The smallest model side that sees a crop of `cropSide` frame pixels without shrinking it; 384 for larger crops. */
export function modelSideFor(cropSide: number): ModelSide {
  return MODEL_SIDES.find((side) => side >= cropSide) ?? MODEL_SIDES[MODEL_SIDES.length - 1]!;
}

/** The graph's constants that encode its input side, as functions of the side (their values at 512 are checked). */
const SIDE_CONSTANTS: Readonly<Record<string, (side: number) => number[]>> = {
  'tower_0/CenternetHead/c5_upsample/up_sampling2d/mul': (s) => [s / 16, s / 16],
  'tower_0/CenternetHead/c4_upsample/up_sampling2d_1/mul': (s) => [s / 8, s / 8],
  'tower_0/CenternetHead/c3_upsample/up_sampling2d_2/mul': (s) => [s / 4, s / 4],
  'tower_0/BatchGather/concat': (s) => [(s / 4) ** 2, 4],
  'tower_0/strided_slice_6': (s) => [s / 4],
};

const weightSpecSchema = z.looseObject({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()),
  dtype: z.enum(['float32', 'int32', 'bool']),
  quantization: z.looseObject({ dtype: z.enum(['uint8', 'uint16', 'float16']) }).optional(),
});

/** What we read of a tfjs graph-model JSON; the rest passes through to the converter as it is. */
const graphJsonSchema = z.looseObject({
  format: z.literal('graph-model'),
  modelTopology: z.looseObject({
    node: z.array(z.looseObject({ name: z.string(), op: z.string(), attr: z.record(z.string(), z.unknown()).optional() })),
  }),
  signature: z.record(z.string(), z.unknown()).optional(),
  weightsManifest: z.array(z.strictObject({ paths: z.array(z.string().min(1)), weights: z.array(weightSpecSchema) })).min(1),
});
type GraphJson = z.infer<typeof graphJsonSchema>;
type WeightSpec = z.infer<typeof weightSpecSchema>;

function invalid(file: string, reason: string, cause?: unknown): CamveilError {
  return new CamveilError('CAMVEIL_E_MODEL_INVALID', `${file}: ${reason}`, { where: file, cause });
}

const BYTES_PER: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/** Byte offset of each weight in the concatenated weight data, as tfjs lays them out. */
function weightOffsets(specs: readonly WeightSpec[], total: number): Map<string, number> {
  const offsets = new Map<string, number>();
  let at = 0;
  for (const spec of specs) {
    offsets.set(spec.name, at);
    at += spec.shape.reduce((a, b) => a * b, 1) * BYTES_PER[spec.quantization?.dtype ?? spec.dtype]!;
  }
  if (at !== total) throw invalid(CENTERNET_GRAPH, `weights take ${at} bytes, the weight files hold ${total}`);
  return offsets;
}

const squareShape = (side: number) => ({ dim: [{ size: '1' }, { size: String(side) }, { size: String(side) }, { size: '3' }] });

/**
 * The graph for `side`: the verified weight bytes with SIDE_CONSTANTS set for it (a copy; 512 uses the
 * verified bytes as they are) and the input declared S×S. Throws when a constant does not hold its 512 value:
 * then this is not the graph the side arithmetic was worked out for.
 */
function artifactsFor(graph: GraphJson, specs: WeightSpec[], weights: Buffer, offsets: Map<string, number>, side: number): tf.io.ModelArtifacts {
  const data = Buffer.from(weights);
  for (const [name, valuesAt] of Object.entries(SIDE_CONSTANTS)) {
    const at = offsets.get(name);
    const spec = specs.find((s) => s.name === name);
    const expected = valuesAt(NATIVE_SIDE);
    const found = at === undefined ? [] : expected.map((_, i) => weights.readInt32LE(at + 4 * i));
    if (at === undefined || spec?.dtype !== 'int32' || spec.quantization !== undefined || found.some((v, i) => v !== expected[i])) {
      throw invalid(CENTERNET_GRAPH, `constant ${name} is not the int32 ${JSON.stringify(expected)} of MB3-CenterNet at ${NATIVE_SIDE} (found ${JSON.stringify(found)})`);
    }
    valuesAt(side).forEach((v, i) => data.writeInt32LE(v, at + 4 * i));
  }
  const topology = structuredClone(graph.modelTopology);
  for (const node of topology.node) {
    if (node.op === 'Placeholder' && node.name === INPUT) node.attr = { ...node.attr, shape: { shape: squareShape(side) } };
  }
  const signature = structuredClone(graph.signature ?? {});
  const inputs = signature.inputs as Record<string, { tensorShape?: unknown }> | undefined;
  if (inputs?.[INPUT] !== undefined) inputs[INPUT].tensorShape = squareShape(side);
  return {
    modelTopology: topology,
    format: graph.format,
    signature,
    weightSpecs: specs,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  };
}

export interface CenterNetDetectOptions {
  /** Detections scoring below this are dropped before duplicates are suppressed (default 0.1). */
  minScore?: number;
  /** Which classes may be duplicates of each other (see SuppressOptions.familyOf); default: the class itself. */
  familyOf?: SuppressOptions['familyOf'];
}

/**
 * MB3-CenterNet (COCO 80 classes) from `@vladmandic/human`, built from verified bytes (never read from
 * disk again: its wasm build cannot load `file://` URLs anyway). One graph per side in MODEL_SIDES, built
 * at load (8 MB of float32 weights each, 32 MB for the four).
 */
export class CenterNet {
  readonly #models: ReadonlyMap<number, GraphModel>;
  #calls = 0;

  private constructor(models: ReadonlyMap<number, GraphModel>) {
    this.#models = models;
  }

  /** Builds the graphs from the verified `objects` files. Throws `CAMVEIL_E_MODEL_INVALID`. */
  static async load(models: VerifiedModels, sides: readonly number[] = MODEL_SIDES): Promise<CenterNet> {
    const graphBytes = models.files.get(CENTERNET_GRAPH);
    if (graphBytes === undefined) throw invalid(CENTERNET_GRAPH, 'not among the verified model files');
    let graph: GraphJson;
    try {
      graph = graphJsonSchema.parse(JSON.parse(graphBytes.toString('utf8')));
    } catch (error) {
      throw invalid(CENTERNET_GRAPH, `not a tfjs graph model: ${(error as Error).message}`, error);
    }
    const bins: Buffer[] = [];
    for (const path of graph.weightsManifest.flatMap((g) => g.paths)) {
      const bin = models.files.get(basename(path));
      if (bin === undefined) throw invalid(CENTERNET_GRAPH, `names ${path}, which is not among the verified model files`);
      bins.push(bin);
    }
    const weights = Buffer.concat(bins);
    const specs = graph.weightsManifest.flatMap((g) => g.weights);
    const offsets = weightOffsets(specs, weights.length);
    const built = new Map<number, GraphModel>();
    try {
      for (const side of sides) {
        if (!Number.isInteger(side) || side <= 0 || side % 32 !== 0) throw new RangeError(`model side ${side} is not a positive multiple of 32`);
        const artifacts = artifactsFor(graph, specs, weights, offsets, side);
        try {
          built.set(side, await loadGraphModel(tf.io.fromMemory(artifacts)));
        } catch (error) {
          throw invalid(CENTERNET_GRAPH, `the graph does not load: ${(error as Error).message}`, error);
        }
      }
    } catch (error) {
      for (const model of built.values()) model.dispose();
      throw error;
    }
    return new CenterNet(built);
  }

  /** The sides this instance runs at. */
  get sides(): number[] {
    return [...this.#models.keys()];
  }

  /** How many times the net ran. */
  get calls(): number {
    return this.#calls;
  }

  /**
   * Runs the net on one square RGB input, `[1, S, S, 3]` float 0..255 with S one of `sides`. Returns the
   * detections above `minScore`, duplicates suppressed, best first; boxes in input pixels (edges, so a box
   * may reach S), clamped to the input.
   */
  async detect(input: tf.Tensor4D, options: CenterNetDetectOptions = {}): Promise<Detection[]> {
    const [batch, height, width, channels] = input.shape;
    const model = this.#models.get(height);
    if (batch !== 1 || height !== width || channels !== 3 || model === undefined) {
      throw new CamveilError('CAMVEIL_E_INTERNAL', `the object net takes [1, S, S, 3] with S in ${this.sides.join(', ')}; got [${input.shape.join(', ')}]`, {
        where: 'objects',
      });
    }
    const minScore = options.minScore ?? 0.1;
    const output = model.execute(input, OUTPUT) as tf.Tensor;
    this.#calls += 1;
    let rows: Float32Array;
    try {
      rows = (await output.data()) as Float32Array;
    } finally {
      output.dispose();
    }
    const side = height;
    const found: Detection[] = [];
    for (let at = 0; at + 6 <= rows.length; at += 6) {
      const score = rows[at + 4]!;
      const classIndex = rows[at + 5]!;
      if (!(score >= minScore) || !Number.isInteger(classIndex) || classIndex < 0 || classIndex >= CLASS_COUNT) continue;
      const x1 = Math.min(Math.max(rows[at]!, 0), side);
      const y1 = Math.min(Math.max(rows[at + 1]!, 0), side);
      const x2 = Math.min(Math.max(rows[at + 2]!, 0), side);
      const y2 = Math.min(Math.max(rows[at + 3]!, 0), side);
      if (x2 <= x1 || y2 <= y1) continue;
      found.push({ classIndex, score, box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 } });
    }
    return suppressDuplicates(found, options.familyOf === undefined ? {} : { familyOf: options.familyOf });
  }

  dispose(): void {
    for (const model of this.#models.values()) model.dispose();
  }
}
