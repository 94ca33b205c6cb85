import { describe, expect, it } from 'vitest';
import { labelOf } from '../../src/analysis/objects/object-classes.js';
import { averagePrecision, countsAt, evaluate, matchImage, thresholdForPrecision, type ImageDetections } from '../../bench/objects-eval.js';
import { readLabels } from '../../bench/objects-set.js';

const box = (x: number, y: number, width = 100, height = 100) => ({ x, y, width, height });

describe('matchImage', () => {
  it('counts a detection overlapping a truth box at IoU ≥ 0.5 as found, and one below as a false positive', () => {
    // Shifted 30 px on a 100 px box: IoU 70·100 / (2·10000 − 7000) = 0.538. Shifted 40: 0.43.
    const image: ImageDetections = {
      truth: [{ group: 'person', box: box(0, 0) }, { group: 'person', box: box(500, 0) }],
      detections: [
        { group: 'person', score: 0.9, box: box(30, 0) },
        { group: 'person', score: 0.8, box: box(540, 0) },
      ],
    };
    const m = matchImage(image, 'person');
    expect(m.positives).toBe(2);
    expect(m.outcomes).toEqual([
      { score: 0.9, tp: true },
      { score: 0.8, tp: false },
    ]);
  });

  it('takes each truth box once: a second detection on it is a false positive, the better-scored one wins', () => {
    const image: ImageDetections = {
      truth: [{ group: 'animal', box: box(0, 0) }],
      detections: [
        { group: 'animal', score: 0.4, box: box(0, 0) },
        { group: 'animal', score: 0.7, box: box(10, 10) },
      ],
    };
    expect(matchImage(image, 'animal').outcomes).toEqual([
      { score: 0.7, tp: true },
      { score: 0.4, tp: false },
    ]);
  });

  it('matches within a group only: a vehicle box does not find a person', () => {
    const image: ImageDetections = {
      truth: [{ group: 'person', box: box(0, 0) }],
      detections: [{ group: 'vehicle', score: 0.9, box: box(0, 0) }],
    };
    expect(matchImage(image, 'person')).toEqual({ outcomes: [], positives: 1 });
    expect(matchImage(image, 'vehicle')).toEqual({ outcomes: [{ score: 0.9, tp: false }], positives: 0 });
  });

  it('neither counts nor penalises a difficult truth box', () => {
    const image: ImageDetections = {
      truth: [{ group: 'animal', box: box(0, 0), difficult: true }, { group: 'animal', box: box(300, 0) }],
      detections: [{ group: 'animal', score: 0.9, box: box(0, 0) }],
    };
    expect(matchImage(image, 'animal')).toEqual({ outcomes: [], positives: 1 });
  });
});

describe('countsAt', () => {
  const images: ImageDetections[] = [
    {
      truth: [{ group: 'person', box: box(0, 0) }, { group: 'person', box: box(200, 0) }],
      detections: [
        { group: 'person', score: 0.9, box: box(0, 0) },
        { group: 'person', score: 0.3, box: box(200, 0) },
        { group: 'person', score: 0.6, box: box(600, 600) },
      ],
    },
    { truth: [], detections: [{ group: 'person', score: 0.2, box: box(0, 0) }] },
  ];

  it('counts only detections at or above the threshold', () => {
    expect(countsAt(images, 'person', 0.5)).toEqual({ positives: 2, truePositives: 1, falsePositives: 1, precision: 0.5, recall: 0.5 });
    expect(countsAt(images, 'person', 0.2)).toEqual({ positives: 2, truePositives: 2, falsePositives: 2, precision: 0.5, recall: 1 });
    expect(countsAt(images, 'person', 0.7)).toEqual({ positives: 2, truePositives: 1, falsePositives: 0, precision: 1, recall: 0.5 });
  });

  it('leaves precision undefined when nothing is detected and recall undefined when there is nothing to find', () => {
    expect(countsAt(images, 'person', 0.95).precision).toBeUndefined();
    expect(countsAt(images, 'vehicle', 0).recall).toBeUndefined();
  });

  it('finds the lowest threshold reaching a precision, with its recall', () => {
    expect(thresholdForPrecision(images, 'person', 0.9)).toEqual({ minScore: 0.9, precision: 1, recall: 0.5 });
    expect(thresholdForPrecision(images, 'person', 0.5)).toEqual({ minScore: 0.2, precision: 0.5, recall: 1 });
    expect(thresholdForPrecision([{ truth: [], detections: [{ group: 'person', score: 0.5, box: box(0, 0) }] }], 'person', 0.9)).toBeUndefined();
  });
});

describe('averagePrecision (all-point interpolated)', () => {
  it('is 1 for a perfect ranking and 0 when nothing is found', () => {
    const perfect: ImageDetections[] = [
      { truth: [{ group: 'person', box: box(0, 0) }], detections: [{ group: 'person', score: 0.9, box: box(0, 0) }, { group: 'person', score: 0.1, box: box(700, 700) }] },
    ];
    expect(averagePrecision(perfect, 'person')).toBe(1);
    expect(averagePrecision([{ truth: [{ group: 'person', box: box(0, 0) }], detections: [] }], 'person')).toBe(0);
    expect(averagePrecision([{ truth: [], detections: [] }], 'person')).toBeUndefined();
  });

  it('takes the area under the precision envelope', () => {
    // Ranked: TP (P 1, R 1/3), FP, TP (P 2/3, R 2/3), FP, FP; the third object never found.
    // Envelope: 1 up to R 1/3, 2/3 up to R 2/3, nothing after: AP = 1/3·1 + 1/3·2/3 = 5/9.
    const images: ImageDetections[] = [
      {
        truth: [{ group: 'vehicle', box: box(0, 0) }, { group: 'vehicle', box: box(200, 0) }, { group: 'vehicle', box: box(400, 0) }],
        detections: [
          { group: 'vehicle', score: 0.95, box: box(0, 0) },
          { group: 'vehicle', score: 0.9, box: box(0, 300) },
          { group: 'vehicle', score: 0.8, box: box(200, 0) },
          { group: 'vehicle', score: 0.7, box: box(0, 600) },
          { group: 'vehicle', score: 0.6, box: box(300, 600) },
        ],
      },
    ];
    expect(averagePrecision(images, 'vehicle')).toBeCloseTo(5 / 9, 10);
  });

  it('ranks detections across images, not per image', () => {
    // Image A: a FP at 0.9; image B: a TP at 0.5. Ranked: FP, TP → P at R 1 is 1/2.
    const images: ImageDetections[] = [
      { truth: [], detections: [{ group: 'animal', score: 0.9, box: box(0, 0) }] },
      { truth: [{ group: 'animal', box: box(0, 0) }], detections: [{ group: 'animal', score: 0.5, box: box(0, 0) }] },
    ];
    expect(averagePrecision(images, 'animal')).toBeCloseTo(0.5, 10);
  });
});

describe('evaluate', () => {
  it('reports every asked group, including those the set lacks', () => {
    const report = evaluate([{ truth: [{ group: 'person', box: box(0, 0) }], detections: [{ group: 'person', score: 0.8, box: box(0, 0) }] }], ['person', 'vehicle'], 0.5);
    expect(report.person).toEqual({ positives: 1, truePositives: 1, falsePositives: 0, precision: 1, recall: 1, ap50: 1 });
    expect(report.vehicle).toEqual({ positives: 0, truePositives: 0, falsePositives: 0, precision: undefined, recall: undefined, ap50: undefined });
  });
});

describe('the labelled set (bench/objects-set/labels.json)', () => {
  const labels = readLabels();

  it('names a listed source for every image, each image once', () => {
    for (const image of labels.images) expect(labels.sources[image.source], image.id).toBeDefined();
    expect(new Set(labels.images.map((i) => i.id)).size).toBe(labels.images.length);
  });

  it('keeps every crop inside its image and every box inside its (cropped) image', () => {
    for (const image of labels.images) {
      const width = image.crop?.width ?? image.width;
      const height = image.crop?.height ?? image.height;
      if (image.crop !== undefined) {
        expect(image.crop.x + image.crop.width, image.id).toBeLessThanOrEqual(image.width);
        expect(image.crop.y + image.crop.height, image.id).toBeLessThanOrEqual(image.height);
      }
      for (const o of image.objects) {
        expect(o.box.x + o.box.width, `${image.id} ${o.class}`).toBeLessThanOrEqual(width);
        expect(o.box.y + o.box.height, `${image.id} ${o.class}`).toBeLessThanOrEqual(height);
      }
    }
  });

  it("labels each object with its COCO class's group, as the hub reports it", () => {
    for (const image of labels.images) for (const o of image.objects) expect(o.group, `${image.id} ${o.class}`).toBe(labelOf(o.class));
  });
});
