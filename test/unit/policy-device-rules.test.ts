import { describe, expect, it } from 'vitest';
import { DEFAULT_CAPABLE_MODELS, DEFAULT_MIN_FACE_STREAM, isFaceCapable, isListedModel } from '../../src/policy/device-rules.js';

const opts = { capableModels: DEFAULT_CAPABLE_MODELS, ...DEFAULT_MIN_FACE_STREAM };

describe('isFaceCapable', () => {
  it.each([
    // facts, width, height, householdOverride, capable, reason
    [{ manufacturer: 'Foscam', model: 'FI9900P' }, 1920, 1080, false, true, 'model-listed'],
    [{ manufacturer: 'FOSCAM', model: 'fi9926p' }, 2560, 1440, false, true, 'model-listed'],
    [{ manufacturer: ' Foscam ', model: ' R2 ' }, 1920, 1080, false, true, 'model-listed'],
    [{ manufacturer: 'Foscam', model: 'G4EP' }, 2560, 1440, false, true, 'model-listed'],
    [{ manufacturer: 'Foscam', model: 'FI9821W' }, 1920, 1080, false, false, 'model-not-listed'],
    [{ manufacturer: 'Acme', model: 'FI9900P' }, 1920, 1080, false, false, 'model-not-listed'],
    [{ manufacturer: 'Foscam', model: 'FI9900P' }, 1280, 720, false, false, 'stream-too-small'],
    [{ manufacturer: 'Foscam', model: 'FI9900P' }, 1920, 1079, true, false, 'stream-too-small'],
    [{ manufacturer: 'Foscam', model: 'FI9900P' }, Number.NaN, 1080, false, false, 'stream-too-small'],
    [{}, 1920, 1080, false, false, 'model-unknown'],
    [{ manufacturer: 'Foscam' }, 1920, 1080, false, false, 'model-unknown'],
    [{}, 1920, 1080, true, true, 'household-override'],
    [{ manufacturer: 'Acme', model: 'X1' }, 3840, 2160, true, true, 'household-override'],
  ] as const)('%j %ix%i override=%s → %s (%s)', (facts, w, h, householdOverride, capable, reason) => {
    expect(isFaceCapable(facts, w, h, { ...opts, householdOverride })).toEqual({ capable, reason });
  });

  it('matches globs exactly, with regex characters taken literally', () => {
    const models = [{ manufacturer: 'Acme', model: 'C.1?' }];
    expect(isListedModel({ manufacturer: 'acme', model: 'C.12' }, models)).toBe(true);
    expect(isListedModel({ manufacturer: 'acme', model: 'CX12' }, models)).toBe(false);
    expect(isListedModel({ manufacturer: 'acme', model: 'C.123' }, models)).toBe(false);
    expect(isListedModel({ manufacturer: 'Foscam', model: 'xFI9900P' }, DEFAULT_CAPABLE_MODELS)).toBe(false);
  });
});
