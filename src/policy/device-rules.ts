/**
 * Which cameras may run face recognition. The privacy policy promises the feature only "on certain device
 * models" (Foscam Privacy Notice 2021, §1.1 "Information for facial recognition"), so an unknown model is
 * not capable unless the household overrides that in config. A listed model must still deliver a stream
 * of at least the minimum resolution: faces from a low-resolution stream are too small to match reliably,
 * and misidentification is a privacy harm of its own.
 */

/** A capable model: manufacturer compared case-insensitively; model exact or a glob (`*`, `?`), e.g. `FI99*`. */
export interface CapableModel {
  manufacturer: string;
  model: string;
}

/** What the camera says about itself (ONVIF GetDeviceInformation); both may be missing. */
export interface DeviceModelFacts {
  manufacturer?: string;
  model?: string;
}

export interface FaceCapabilityOptions {
  capableModels: readonly CapableModel[];
  minWidth: number;
  minHeight: number;
  /** Config: the household vouches for an unlisted or unidentified camera. Never lowers the resolution floor. */
  householdOverride?: boolean;
}

/**
 * Why a camera is or is not face-capable (stable, machine-readable):
 * `model-listed`, `household-override`, `model-not-listed`, `model-unknown`, `stream-too-small`.
 */
export type FaceCapabilityReason = 'model-listed' | 'household-override' | 'model-not-listed' | 'model-unknown' | 'stream-too-small';

/**
 * Foscam models with 1080p (2 MP) or larger sensors, from Foscam's product specifications: the FI99xx
 * HD line (FI9900P, FI9902P, FI9912P, FI9926P, FI9928P, FI9936P, FI9961EP), R2/R4 indoor PTZ (1080p/4 MP)
 * and G4 outdoor (4 MP). The 720p lines (FI98xx, C1, R1) are left out. The resolution floor below still
 * applies to whatever stream the camera actually delivers, so a mislabelled variant fails safe.
 */
export const DEFAULT_CAPABLE_MODELS: readonly CapableModel[] = Object.freeze([
  { manufacturer: 'Foscam', model: 'FI99*' },
  { manufacturer: 'Foscam', model: 'R2*' },
  { manufacturer: 'Foscam', model: 'R4*' },
  { manufacturer: 'Foscam', model: 'G4*' },
]);

/** 1080p, matching the sensor floor of the default list. */
export const DEFAULT_MIN_FACE_STREAM = Object.freeze({ minWidth: 1920, minHeight: 1080 });

function globToRegExp(glob: string): RegExp {
  const body = glob
    .trim()
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 'i');
}

/** True when `facts` names a manufacturer and model that one of `models` covers. */
export function isListedModel(facts: DeviceModelFacts, models: readonly CapableModel[]): boolean {
  const manufacturer = facts.manufacturer?.trim().toLowerCase();
  const model = facts.model?.trim();
  if (manufacturer === undefined || manufacturer === '' || model === undefined || model === '') return false;
  return models.some((m) => m.manufacturer.trim().toLowerCase() === manufacturer && globToRegExp(m.model).test(model));
}

/**
 * Whether face recognition may run on this camera as far as the device goes (consent, region and the
 * camera's own switch are decided elsewhere). Pure.
 */
export function isFaceCapable(
  facts: DeviceModelFacts,
  streamWidth: number,
  streamHeight: number,
  opts: FaceCapabilityOptions,
): { capable: boolean; reason: FaceCapabilityReason } {
  // `!(a >= b)` rather than `a < b` so that NaN dimensions count as too small.
  if (!(streamWidth >= opts.minWidth) || !(streamHeight >= opts.minHeight)) return { capable: false, reason: 'stream-too-small' };
  if (isListedModel(facts, opts.capableModels)) return { capable: true, reason: 'model-listed' };
  if (opts.householdOverride === true) return { capable: true, reason: 'household-override' };
  const identified = (facts.manufacturer ?? '').trim() !== '' && (facts.model ?? '').trim() !== '';
  return { capable: false, reason: identified ? 'model-not-listed' : 'model-unknown' };
}
