import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { manifestSchema } from '../../src/crypto/manifest.js';
import { ConsentLedger } from '../../src/policy/consent-ledger.js';
import { CONSENT_NAMES, OBJECT_KINDS } from '../../src/policy/vocabulary.js';
import { migrate } from '../../src/store/database.js';
import { STORE_MODULE, STORE_SCHEMA } from '../../src/store/schema.js';

/*
 * SQL CHECK constraints are written in append-only migration steps, so they cannot be derived from the
 * vocabulary lists. These tests read the constraint a fresh database ends up with and compare it with the
 * list: a word added to a list without a migration (or a migration without the word) fails here.
 */

/** The values of `<column> … CHECK (<column> IN ('a', 'b'))` in a table's CREATE statement as SQLite keeps it. */
function checkedValues(db: Database.Database, table: string, column: string): string[] {
  const row = db.prepare<[string], { sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
  expect(row, `table ${table}`).toBeDefined();
  const match = new RegExp(`\\n\\s*${column}\\s[^\\n]*CHECK \\(${column} IN \\(([^)]*)\\)\\)`).exec(row!.sql);
  expect(match, `CHECK on ${table}.${column}`).not.toBeNull();
  return match![1]!.split(',').map((v) => v.trim().replace(/^'(.*)'$/, '$1'));
}

function freshDatabase(): Database.Database {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE schema_versions (module TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT');
  return db;
}

describe('vocabulary: one list per concept, the SQL constraints in step with it', () => {
  it("store_objects.kind accepts exactly OBJECT_KINDS after every migration step", () => {
    const db = freshDatabase();
    migrate(db, STORE_MODULE, STORE_SCHEMA);
    expect(checkedValues(db, 'store_objects', 'kind').sort()).toEqual([...OBJECT_KINDS].sort());
    const insert = db.prepare("INSERT INTO store_objects (object_id, kind, captured_at, stored_at, bytes) VALUES (?, ?, 0, 0, 1)");
    OBJECT_KINDS.forEach((kind, i) => expect(() => insert.run(`${'a'.repeat(25)}${'abcdefgh'[i]}`, kind)).not.toThrow());
    expect(() => insert.run('b'.repeat(26), 'not-a-kind')).toThrow(/CHECK constraint failed/);
    db.close();
  });

  it('policy_consent_ledger.consent accepts exactly CONSENT_NAMES', () => {
    const db = freshDatabase();
    const ledger = new ConsentLedger(db);
    expect(checkedValues(db, 'policy_consent_ledger', 'consent').sort()).toEqual([...CONSENT_NAMES].sort());
    const ctx = { actor: 'local-operator', policyVersion: '2021-10-31', requestDigest: 'a'.repeat(64) };
    for (const name of CONSENT_NAMES) ledger.grant(name, ctx);
    expect(Object.entries(ledger.currentConsent()).filter(([, v]) => v === true).map(([k]) => k).sort()).toEqual([...CONSENT_NAMES].sort());
    db.close();
  });

  it('a manifest takes every object kind and nothing else', () => {
    const base = { version: 1, objectId: 'a'.repeat(26), cameraPseudonym: `cam_${'a'.repeat(16)}`, startedAt: '2026-01-01T00:00:00Z', contentType: 'video/mp4' };
    for (const kind of OBJECT_KINDS) expect(manifestSchema.safeParse({ ...base, kind }).success).toBe(true);
    expect(manifestSchema.safeParse({ ...base, kind: 'not-a-kind' }).success).toBe(false);
  });
});
