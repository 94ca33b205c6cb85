import type Database from 'better-sqlite3';
import type { EnrolmentStore } from '../analysis/faces/enrolment.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/schema.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { PolicyGate } from '../policy/gate.js';
import type { SealedPublisher } from '../publishing/sealed-publisher.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Outbox } from '../uplink/outbox.js';
import { FaceAlbums } from './face-albums.js';

/** Where albums go: the household's store and publisher, the outbox, and the cloud deletion requests. */
export interface AlbumPublishing {
  /** Absent without household recipients (memory-only media): then there are no albums. */
  store: ObjectStore | undefined;
  publisher: SealedPublisher | undefined;
  outbox: Outbox | undefined;
  flushDeletions: () => void;
}

export interface OpenFaceAlbumsOptions extends AlbumPublishing {
  db: Database.Database;
  bus: EventBus;
  logger: Logger;
  hub: { identity: string; recipient: string };
  config: () => Config;
  gate: PolicyGate;
  audit: AuditLog;
  cameraPseudonym: (cameraId: string) => string;
}

/** Face albums: sealed to the household like clips, stored and queued the same way — only where there is a store. */
export function openFaceAlbums(people: EnrolmentStore, o: OpenFaceAlbumsOptions): FaceAlbums | undefined {
  if (o.store === undefined || o.publisher === undefined) return undefined;
  const config = o.config();
  const { faceRecognition } = config;
  return new FaceAlbums({
    db: o.db,
    bus: o.bus,
    logger: o.logger,
    hub: o.hub,
    publisher: o.publisher,
    store: o.store,
    people,
    gate: o.gate,
    ...(o.outbox === undefined ? {} : { outbox: o.outbox }),
    flushDeletions: o.flushDeletions,
    cameraPseudonym: o.cameraPseudonym,
    policyVersion: config.privacy.policyVersion,
    settings: { embeddings: faceRecognition.albumEmbeddings, maxSightings: faceRecognition.albumMaxSightings, intervalMs: faceRecognition.albumIntervalSeconds * 1000 },
    retentionDays: () => o.config().storage.retentionDays,
    audit: o.audit,
  });
}
