import type { AnalysedFrame, FrameAnalyser } from '../../src/analysis/frame-analyser.js';

/** A FrameAnalyser that only watches what it is offered: for tests of what a pipeline hands its analysers. */
export function watchingAnalyser(name: string, offer: (frame: AnalysedFrame) => void): FrameAnalyser {
  return { name, offer, start: () => Promise.resolve(), stop: () => Promise.resolve(), idle: () => Promise.resolve() };
}
