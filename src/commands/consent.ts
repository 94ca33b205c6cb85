import { CONSENT_NAMES, type ConsentName } from '../policy/vocabulary.js';
import { localRequest } from '../policy/consent-service.js';
import { CamveilError } from '../errors.js';
import type { CommandIO } from './io.js';
import { openHubContext } from './hub-context.js';

function consentName(value: string): ConsentName {
  if (!(CONSENT_NAMES as readonly string[]).includes(value)) {
    throw new CamveilError('CAMVEIL_E_USAGE', `unknown consent "${value}": one of ${CONSENT_NAMES.join(', ')}`);
  }
  return value as ConsentName;
}

export type ConsentAction = { kind: 'show' } | { kind: 'grant' | 'withdraw'; consent: string } | { kind: 'accept-policy'; version: string };

/**
 * `camveil consent show|grant|withdraw|accept-policy`: the household's consents from the hub's own console
 * (until the MQTT control plane, which calls the same service). A running gateway sees the change within
 * 50 ms and enforces it: a withdrawal of cloudUpload aborts uploads and destroys the queue.
 */
export async function runConsent(action: ConsentAction, opts: { config: string; json?: boolean }, io: CommandIO): Promise<number> {
  const hub = await openHubContext(opts.config);
  try {
    const words = JSON.stringify({ command: `consent ${action.kind}`, action, at: new Date().toISOString() });
    switch (action.kind) {
      case 'show':
        break;
      case 'grant':
        await hub.consent.grant(consentName(action.consent), localRequest(words));
        break;
      case 'withdraw':
        await hub.consent.withdraw(consentName(action.consent), localRequest(words));
        break;
      case 'accept-policy':
        await hub.consent.acceptPolicy(action.version, localRequest(words));
        break;
      default:
        action satisfies never;
    }
    const consent = hub.consent.snapshot();
    if (consent === 'unreadable') {
      io.stderr('camveil: the consent ledger cannot be read (CAMVEIL_E_CONSENT_UNREADABLE); the hub is in local-only mode');
      return 1;
    }
    const mode = hub.gate.mode();
    if (opts.json === true) {
      io.stdout(JSON.stringify({ consent, mode, policyInForce: hub.config.privacy.policyVersion }));
    } else {
      for (const name of CONSENT_NAMES) io.stdout(`${name.padEnd(20)} ${consent[name] ? 'granted' : 'not granted'}`);
      io.stdout(`${'policy accepted'.padEnd(20)} ${consent.acceptedPolicyVersion ?? 'none'} (in force: ${hub.config.privacy.policyVersion})`);
      io.stdout(`${'mode'.padEnd(20)} ${mode.mode} (${mode.reason})`);
    }
    return 0;
  } finally {
    hub.close();
  }
}
