import type { Gate } from '../../src/policy/gate.js';

/** Allows every upload: for tests of the uplink alone; the service always asks the PolicyGate. */
export const allowAllGate: Gate = {
  mayUpload: () => ({ allowed: true, reason: 'test-allow-all' }),
};
