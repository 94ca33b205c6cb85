import type Database from 'better-sqlite3';
import type { ExportTrailer } from '../audit/audit-export.js';
import type { AuditHead, AuditLog } from '../audit/audit-log.js';
import { EnrolmentStore } from '../analysis/faces/enrolment.js';
import { openCameraList } from '../cameras/camera-list.js';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { loadOrCreateHubKeys } from '../crypto/hub-keys.js';
import { pseudonym } from '../crypto/pseudonym.js';
import { silentLogger, type Logger } from '../log.js';
import type { CameraFacts } from '../policy/camera-facts.js';
import type { ConsentLedger } from '../policy/consent-ledger.js';
import type { ConsentService } from '../policy/consent-service.js';
import type { PolicyGate } from '../policy/gate.js';
import { openPolicy } from '../policy/open-policy.js';
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
  /** What the gate knows of each camera (the same records the service keeps as cameras identify themselves). */
  cameraFacts: CameraFacts;
  consent: ConsentService;
  pseudonymise: (kind: string, value: string) => string;
  /** Enrolled people (sealed to the hub's own key). */
  people: EnrolmentStore;
  close(): void;
}

/**
 * Opens the hub's database for a CLI command, with the policy objects built by the same factory as the
 * service's (policy/open-policy.ts) over the same cameras (the file's and the app-managed ones). A change
 * written here is seen by a running service within its polling interval (SQLite's data_version), and
 * enforced by it; this process only records it.
 */
export async function openHubContext(configFile: string, logger: Logger = silentLogger()): Promise<HubContext> {
  const config = loadConfigFile(configFile);
  const keys = await loadOrCreateHubKeys(config.dataDir);
  const pseudonymise = (kind: string, value: string) => pseudonym(keys.pseudonymSecret, kind, value);
  const db = openDatabase(config.dataDir);
  const { live } = openCameraList(db, config, keys.identity, logger);
  const { anchored, audit, ledger, gate, cameraFacts, consent } = openPolicy({
    db,
    config: () => live.current,
    cameras: () => live.cameras(),
    signingKey: keys.signingKey,
    pseudonymise,
    logger,
  });
  // A rolled-back log is the service's to report (an incident at its start); here the anchor is only left as found.
  if (!anchored.checked.ok) logger.error({ code: 'CAMVEIL_E_AUDIT_ROLLBACK' }, anchored.checked.reason);
  const policyVersion = config.privacy.policyVersion;
  const people = new EnrolmentStore({ db, hub: { identity: keys.identity, recipient: keys.recipient }, audit, policyVersion, ledger });
  const close = (): void => {
    anchored.flush();
    db.close();
  };
  return { config, db, audit, exportTrailer: () => anchored.exportTrailer(), ledger, gate, cameraFacts, consent, pseudonymise, people, close };
}
