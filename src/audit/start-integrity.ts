import type { Config } from '../config/schema.js';
import { looseSecretFiles } from '../config/secret-files.js';
import { auditIncidents } from '../control/incident-monitor.js';
import type { CamveilEvents, EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { AnchoredAudit } from './anchored-audit.js';

export interface StartIntegrityOptions {
  bus: EventBus;
  anchored: AnchoredAudit;
  config: Config;
  logger: Logger;
  cameraPseudonym: (cameraId: string) => string;
  /** Incidents found here are kept in this list too: the control plane tells them once MQTT connects. */
  found: Array<CamveilEvents['incident']>;
}

/**
 * Every incident is audited (rate-limited per reason) from here on; returns the function that stops that.
 * Then what can only be found at start: an audit chain that no longer verifies (edited, removed or
 * reordered records), an anchor the chain contradicts (a rollback), and secret files that group or others
 * can read. Each is an incident at once (audited) and is kept for the household.
 */
export function startIntegrityCheck(options: StartIntegrityOptions): () => void {
  const { bus, anchored, logger } = options;
  const stop = auditIncidents(bus, anchored.log, {
    cameraPseudonym: options.cameraPseudonym,
    onError: (error) => logger.error({ err: error }, 'incident not audited'),
  });
  const found: Array<CamveilEvents['incident']> = [];
  const chain = anchored.log.verify();
  if (!chain.ok) {
    logger.error({ brokenAt: chain.brokenAt, code: 'CAMVEIL_E_AUDIT_BROKEN' }, `audit log hash chain broken at record ${chain.brokenAt}: ${chain.reason}`);
    found.push({ reason: 'audit-chain-broken', detail: `first broken record ${chain.brokenAt}` });
  }
  const checked = anchored.checked;
  if (!checked.ok) {
    // The anchor is left as found (the evidence) and not moved until someone looks: docs/privacy.md, "Audit log".
    logger.error({ code: 'CAMVEIL_E_AUDIT_ROLLBACK' }, checked.reason);
    found.push({ reason: 'audit-chain-broken', detail: checked.detail });
  }
  const loose = looseSecretFiles(options.config);
  if (loose.length > 0) {
    logger.error({ files: loose }, 'secret files readable by group or others: run chmod 600 on them');
    found.push({ reason: 'key-file-permissions', detail: `${loose.length} secret file(s) readable by group or others: ${[...new Set(loose)].join(', ')}` });
  }
  for (const incident of found) {
    options.found.push(incident);
    bus.emit('incident', incident);
  }
  return stop;
}
