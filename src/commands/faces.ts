import { distance, FaceEngine, type Face } from '../analysis/faces/face-engine.js';
import { readImageFile, type RgbImage } from '../analysis/faces/image-input.js';
import { MATCH_THRESHOLD } from '../analysis/faces/threshold.js';
import { CamveilError, exitCodeFor } from '../errors.js';
import type { CommandIO } from './io.js';

export interface FacesCommandOptions {
  json?: boolean;
  /** A loaded engine to use (tests, the gateway); otherwise one is loaded for the call and unloaded after. */
  engine?: FaceEngine;
}

function report(io: CommandIO, error: unknown): number {
  if (!(error instanceof CamveilError)) throw error;
  io.stderr(`${error.code}: ${error.message}`);
  return error.code === 'CAMVEIL_E_IMAGE_INVALID' || error.code === 'CAMVEIL_E_NO_FACE' ? 2 : exitCodeFor(error);
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

function faceJson(face: Face): object {
  const { x, y, width, height } = face.box;
  return { box: { x: round(x), y: round(y), width: round(width), height: round(height) }, score: round(face.score, 3), quality: face.quality };
}

function faceLine(face: Face, index: number): string {
  const { x, y, width, height } = face.box;
  const verdict = face.quality.ok ? 'usable' : `not usable (${face.quality.reason})`;
  return `  #${index + 1} at ${Math.round(x)},${Math.round(y)} size ${Math.round(width)}x${Math.round(height)} score ${face.score.toFixed(2)} ${verdict}`;
}

/**
 * `camveil faces detect IMAGE [--json]`: the faces found in an image file, best score first, with box,
 * score and quality verdict. Finding no face is a result (exit 0).
 *
 * @returns 0; 2 when the file is not a decodable image; 1 for other failures (model files, backend).
 */
export async function runFacesDetect(image: string, opts: FacesCommandOptions, io: CommandIO): Promise<number> {
  try {
    const faces = await FaceEngine.using(async (engine) => engine.detect(await readImageFile(image)), opts.engine);
    if (opts.json === true) {
      io.stdout(JSON.stringify({ image, faces: faces.map(faceJson) }));
    } else {
      io.stdout(`${faces.length} face(s) in ${image}, ${faces.filter((f) => f.quality.ok).length} usable for recognition`);
      faces.forEach((f, i) => io.stdout(faceLine(f, i)));
    }
    return 0;
  } catch (error) {
    return report(io, error);
  }
}

async function bestFace(engine: FaceEngine, file: string): Promise<{ image: RgbImage; face: Face }> {
  const image = await readImageFile(file);
  const faces = await engine.detect(image);
  const face = faces.find((f) => f.quality.ok);
  if (face === undefined) {
    const why = faces.length === 0 ? 'no face found' : `${faces.length} face(s) found, none usable (${faces.map((f) => f.quality.reason).join(', ')})`;
    throw new CamveilError('CAMVEIL_E_NO_FACE', `${file}: ${why}`, { where: file });
  }
  return { image, face };
}

/**
 * `camveil faces compare IMAGE1 IMAGE2 [--json]`: the distance between the best usable face of each
 * image, the matching threshold and the verdict (same person when `distance < threshold`).
 *
 * @returns 0 whatever the verdict; 2 when an image is not a decodable image or holds no usable face;
 * 1 for other failures.
 */
export async function runFacesCompare(image1: string, image2: string, opts: FacesCommandOptions, io: CommandIO): Promise<number> {
  try {
    const result = await FaceEngine.using(async (engine) => {
      const a = await bestFace(engine, image1);
      const b = await bestFace(engine, image2);
      const d = distance(await engine.describe(a.image, a.face), await engine.describe(b.image, b.face));
      return { a: a.face, b: b.face, distance: d };
    }, opts.engine);
    const match = result.distance < MATCH_THRESHOLD;
    if (opts.json === true) {
      io.stdout(
        JSON.stringify({
          image1: { file: image1, ...faceJson(result.a) },
          image2: { file: image2, ...faceJson(result.b) },
          distance: round(result.distance, 4),
          threshold: MATCH_THRESHOLD,
          match,
        }),
      );
    } else {
      io.stdout(
        `distance ${result.distance.toFixed(4)}, threshold ${MATCH_THRESHOLD}: ${match ? 'same person' : 'different people (or not recognisable as the same)'}`,
      );
    }
    return 0;
  } catch (error) {
    return report(io, error);
  }
}
