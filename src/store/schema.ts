/**
 * The store's tables, as migration steps for `migrate(db, STORE_MODULE, STORE_SCHEMA)` (append only).
 *
 * Only what the hub needs to operate is in clear here: random object ids, config camera ids, event ids,
 * times (epoch ms), sizes and kinds. Media, manifests, names and device serials exist only inside the
 * age files. A file's path is not stored: it is `<dataDir>/objects/<objectId>.age`.
 *
 * `event_id` on objects is not a foreign key: a snapshot is stored while its event is still running, and
 * the media sink may store objects for an event that was never recorded here.
 *
 * A face album (`face-album`) is stored with neither camera nor event: which person it belongs to, and
 * which events it lists, exist only inside its age file and in the hub-sealed rows of face-album-rows.ts.
 *
 * `store_objects` keeps SQLite's implicit rowid: it is the order objects were stored in, which quota
 * eviction follows (retention.ts). Never make the table WITHOUT ROWID, and copy rows in rowid order when
 * rebuilding it (step 2's plain SELECT scans in rowid order).
 */
export const STORE_MODULE = 'store';

export const STORE_SCHEMA: readonly string[] = [
  `
CREATE TABLE store_objects (
  object_id   TEXT PRIMARY KEY CHECK (length(object_id) = 26 AND object_id NOT GLOB '*[^a-z2-7]*'),
  kind        TEXT NOT NULL CHECK (kind IN ('clip', 'snapshot', 'face-embedding', 'export', 'event')),
  camera_id   TEXT,
  event_id    TEXT,
  captured_at INTEGER NOT NULL,
  stored_at   INTEGER NOT NULL,
  bytes       INTEGER NOT NULL CHECK (bytes > 0)
) STRICT;
CREATE INDEX store_objects_age ON store_objects (captured_at, object_id);
CREATE INDEX store_objects_camera ON store_objects (camera_id, captured_at);
CREATE INDEX store_objects_event ON store_objects (event_id);
CREATE TABLE store_events (
  event_id   TEXT PRIMARY KEY,
  camera_id  TEXT NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('motion')),
  started_at INTEGER NOT NULL,
  ended_at   INTEGER CHECK (ended_at IS NULL OR ended_at >= started_at)
) STRICT;
CREATE INDEX store_events_camera ON store_events (camera_id, started_at);
CREATE INDEX store_events_started ON store_events (started_at);
`,
  // 2: 'face-album' joins the kinds. SQLite cannot alter a CHECK constraint: the table is rebuilt under a
  // new name, filled, swapped in, and its indexes made again (nothing references it by foreign key).
  `
CREATE TABLE store_objects_v2 (
  object_id   TEXT PRIMARY KEY CHECK (length(object_id) = 26 AND object_id NOT GLOB '*[^a-z2-7]*'),
  kind        TEXT NOT NULL CHECK (kind IN ('clip', 'snapshot', 'face-embedding', 'export', 'event', 'face-album')),
  camera_id   TEXT,
  event_id    TEXT,
  captured_at INTEGER NOT NULL,
  stored_at   INTEGER NOT NULL,
  bytes       INTEGER NOT NULL CHECK (bytes > 0)
) STRICT;
INSERT INTO store_objects_v2 (object_id, kind, camera_id, event_id, captured_at, stored_at, bytes)
  SELECT object_id, kind, camera_id, event_id, captured_at, stored_at, bytes FROM store_objects;
DROP TABLE store_objects;
ALTER TABLE store_objects_v2 RENAME TO store_objects;
CREATE INDEX store_objects_age ON store_objects (captured_at, object_id);
CREATE INDEX store_objects_camera ON store_objects (camera_id, captured_at);
CREATE INDEX store_objects_event ON store_objects (event_id);
`,
];
