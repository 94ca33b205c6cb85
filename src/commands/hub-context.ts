import type Database from 'better-sqlite3';
import { openAnchoredAudit } from '../audit/anchored-audit.js';
import type { ExportTrailer } from '../audit/audit-export.js';
import type { AuditHead, AuditLog } from '../audit/audit-log.js';
import { EnrolmentStore } from '../analysis/faces/enrolment.js';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { loadOrCreateHubKeys } from '../crypto/hub-keys.js';
import { pseudonym } from '../crypto/pseudonym.js';
import { silentLogger, type Logger } from '../log.js';
import { ConsentLedger } from '../policy/consent-ledger.js';
import { ConsentService } from '../policy/consent-service.js';
import { PolicyGate } from '../policy/gate.js';
import { policyFromConfig } from '../policy/policy-history.js';
import { openDatabase } from '../store/database.js';

/** What the hub-side CLI commands (consent, data, audit) work on: the same database the service uses. */
export interface HubContext {
  config: Config;
  db: Database.Database;
  /** Anchored as the service's is (audit-head.json follows every record this command appends). */
  audit: AuditLog;
  /** The signed trailer of an export of `audit` (see AnchoredAudit.exportTrailer). */
  exportTrailer: () => (exported: AuditHead) => ExportTrailer;
  ledger: ConsentLedger;
  gate: PolicyGate;
  consent: ConsentService;
  pseudonymise: (kind: string, value: string) => string;
  /** Enrolled people (sealed to the hub's own key). */
  people: EnrolmentStore;
  close(): void;
}

/**
 * Opens the hub's database for a CLI command. A change written here is seen by a running service within
 * its polling interval (SQLite's data_version), and enforced by it; this process only records it.
 */
export async function openHubContext(configFile: string, logger: Logger = silentLogger()): Promise<HubContext> {
  const config = loadConfigFile(configFile);
  const keys = await loadOrCreateHubKeys(config.dataDir);
  const pseudonymise = (kind: string, value: string) => pseudonym(keys.pseudonymSecret, kind, value);
  const db = openDatabase(config.dataDir);
  // The same anchored log as the service's (gateway.ts), so a console command never leaves the anchor behind.
  const anchored = openAnchoredAudit(db, {
    dataDir: config.dataDir,
    signingKey: keys.signingKey,
    onError: (error) => logger.warn({ err: error }, 'audit anchor not written'),
  });
  // A rolled-back log is the service's to report (an incident at its start); here the anchor is only left as found.
  if (!anchored.checked.ok) logger.error({ code: 'CAMVEIL_E_AUDIT_ROLLBACK' }, anchored.checked.reason);
  const audit = anchored.log;
  const ledger = new ConsentLedger(db);
  const { inForce, history } = policyFromConfig(config.privacy);
  const gate = new PolicyGate({
    ledger,
    region: config.hub.region,
    policy: { inForce, history },
    forcedLocalOnly: config.privacy.localOnly,
    cameras: () => new Map(config.cameras.map((c) => [c.id, { faceRecognitionEnabled: c.faceRecognition, faceCapable: false }])),
    audit,
    cameraPseudonym: (id) => pseudonymise('cam', id),
  });
  const consent = new ConsentService({ db, ledger, gate, audit, policyVersion: inForce.version, logger, enforce: () => Promise.resolve() });
  const people = new EnrolmentStore({ db, hub: { identity: keys.identity, recipient: keys.recipient }, audit, policyVersion: inForce.version, ledger });
  const close = (): void => {
    anchored.flush();
    db.close();
  };
  return { config, db, audit, exportTrailer: () => anchored.exportTrailer(), ledger, gate, consent, pseudonymise, people, close };
}
