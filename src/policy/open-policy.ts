import type Database from 'better-sqlite3';
import type { KeyObject } from 'node:crypto';
import { openAnchoredAudit, type AnchoredAudit } from '../audit/anchored-audit.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/schema.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { CameraFacts, type CameraSwitch } from './camera-facts.js';
import { ConsentLedger } from './consent-ledger.js';
import { ConsentService, type ModeChange } from './consent-service.js';
import { PolicyGate, type PolicyGateOptions } from './gate.js';
import { policyFromConfig } from './policy-history.js';
import type { ConsentName } from './vocabulary.js';

export interface OpenPolicyOptions {
  db: Database.Database;
  /** The configuration now: privacy settings, region, data directory (read at every question where it matters). */
  config: () => Config;
  /** The cameras that exist now (the file's and the app-managed ones). */
  cameras: () => readonly CameraSwitch[];
  signingKey: KeyObject;
  pseudonymise: (kind: string, value: string) => string;
  logger: Logger;
  /** The service's bus (`consent.changed`); the console has none. */
  bus?: EventBus;
  /** Makes a mode change true (the service's withdrawal enforcer); the console only records changes. */
  enforce?: (change: ModeChange) => Promise<void>;
  /** Told of every unsigned withdrawal (the service raises an incident). */
  onUnsignedStop?: (consent: ConsentName) => void;
  /** The region table lookup (PolicyGateOptions.rulesFor): tests give a region of their own. */
  rulesFor?: PolicyGateOptions['rulesFor'];
}

/** The policy objects of one hub database: built the same way for the service and for the console. */
export interface HubPolicy {
  /** Anchored (audit-head.json follows every record appended here); checked when opened. */
  anchored: AnchoredAudit;
  audit: AuditLog;
  ledger: ConsentLedger;
  cameraFacts: CameraFacts;
  gate: PolicyGate;
  consent: ConsentService;
}

/**
 * Opens the anchored audit log, the consent ledger, the per-camera facts, the gate and the consent service
 * on the hub's database. The service (gateway.ts) and the console commands (commands/hub-context.ts) both
 * build them here, so the two can never disagree on what is allowed — face capability included.
 */
export function openPolicy(o: OpenPolicyOptions): HubPolicy {
  const config = o.config();
  const anchored = openAnchoredAudit(o.db, { dataDir: config.dataDir, signingKey: o.signingKey, onError: (error) => o.logger.warn({ err: error }, 'audit anchor not written') });
  const audit = anchored.log;
  const ledger = new ConsentLedger(o.db);
  const policy = policyFromConfig(config.privacy);
  const cameraFacts = new CameraFacts({ db: o.db, cameras: o.cameras, privacy: () => o.config().privacy });
  const gate = new PolicyGate({
    ledger,
    region: config.hub.region,
    policy,
    forcedLocalOnly: config.privacy.localOnly,
    cameras: () => cameraFacts.forGate(),
    audit,
    cameraPseudonym: (id) => o.pseudonymise('cam', id),
    ...(o.rulesFor === undefined ? {} : { rulesFor: o.rulesFor }),
  });
  const consent = new ConsentService({
    db: o.db,
    ledger,
    gate,
    audit,
    policyVersion: policy.inForce.version,
    logger: o.logger,
    enforce: o.enforce ?? (() => Promise.resolve()),
    ...(o.bus === undefined ? {} : { bus: o.bus }),
    ...(o.onUnsignedStop === undefined ? {} : { onUnsignedStop: o.onUnsignedStop }),
  });
  return { anchored, audit, ledger, cameraFacts, gate, consent };
}
