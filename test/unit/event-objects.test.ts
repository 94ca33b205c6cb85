import { describe, expect, it } from 'vitest';
import type { DetectedObject } from '../../src/analysis/frame-analyser.js';
import { EventObjectsTally } from '../../src/cameras/event-objects.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';

const frame = (seq: number): AnalysisFrame => ({ cameraId: 'c', at: seq * 500, seq, width: 2, height: 2, data: Buffer.alloc(12) });
const object = (label: DetectedObject['label'], score: number): DetectedObject => ({ label, cocoClass: label === 'vehicle' ? 'car' : label === 'animal' ? 'dog' : 'person', score, box: { x: 0, y: 0, width: 1, height: 1 } });

describe("EventObjectsTally: what an event's frames showed", () => {
  it('the best object of the highest-priority label wins, whatever the scores of lower labels', () => {
    const tally = new EventObjectsTally();
    for (let i = 0; i < 3; i++) tally.offered();
    tally.answered([object('vehicle', 0.95)], frame(1));
    tally.answered([object('person', 0.4), object('animal', 0.9)], frame(2));
    tally.answered([object('person', 0.6)], frame(3));
    expect(tally.bestFrame?.seq).toBe(3);
    expect(tally.summary()).toEqual({
      labels: ['person', 'animal', 'vehicle'],
      scores: { person: 0.6, animal: 0.9, vehicle: 0.95 },
      snapshotObject: { label: 'person', cocoClass: 'person', score: 0.6, box: { x: 0, y: 0, width: 1, height: 1 } },
    });
  });

  it('settles when every offered frame is answered; no summary when the analyser never looked', async () => {
    const tally = new EventObjectsTally();
    tally.offered();
    tally.offered();
    let settled = false;
    const wait = tally.settled(60_000).then(() => (settled = true));
    tally.answered(undefined, frame(1));
    await Promise.resolve();
    expect(settled).toBe(false);
    tally.answered(undefined, frame(2));
    await wait;
    expect(settled).toBe(true);
    expect(tally.summary()).toBeUndefined();
    expect(tally.bestFrame).toBeUndefined();
  });
});
