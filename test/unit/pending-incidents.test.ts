import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PendingIncidents } from '../../src/control/pending-incidents.js';
import type { SecurityEvent } from '../../src/control/sealed-events.js';
import { openDatabase } from '../../src/store/database.js';

let dir: string;
let db: Database.Database;
let hub: { identity: string; recipient: string };

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-pending-incidents-'));
  db = openDatabase(dir);
  const identity = await generateX25519Identity();
  hub = { identity, recipient: await identityToRecipient(identity) };
});

afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const event = (i: number): SecurityEvent => ({ type: 'security', reason: 'bad-signatures', detail: `incident number ${i}`, at: 1_000 + i });

describe('PendingIncidents', () => {
  it('keeps the newest `max`, sealed, and drains them oldest first', async () => {
    const pending = new PendingIncidents({ db, hub, max: 5 });
    let dropped = 0;
    for (let i = 0; i < 8; i++) dropped += await pending.add(event(i));
    expect(dropped).toBe(3);
    expect(pending.count()).toBe(5);
    const rows = db.prepare('SELECT sealed FROM control_pending_incidents').all() as Array<{ sealed: Buffer }>;
    for (const r of rows) {
      expect(r.sealed.subarray(0, 21).toString('latin1')).toBe('age-encryption.org/v1');
      expect(r.sealed.includes('incident number')).toBe(false);
    }
    const told: SecurityEvent[] = [];
    expect(await pending.drain((e) => Promise.resolve((told.push(e), true)))).toBe(5);
    expect(told.map((e) => e.detail)).toEqual([3, 4, 5, 6, 7].map((i) => `incident number ${i}`));
    expect(pending.count()).toBe(0);
  });

  it('stops at the first event not published and keeps it and the rest for the next drain', async () => {
    const pending = new PendingIncidents({ db, hub });
    for (let i = 0; i < 3; i++) await pending.add(event(i));
    let calls = 0;
    expect(await pending.drain(() => Promise.resolve(++calls === 1))).toBe(1);
    expect(pending.count()).toBe(2);
    await expect(pending.drain(() => Promise.reject(new Error('broker gone')))).rejects.toThrow('broker gone');
    expect(pending.count()).toBe(2);
    const told: SecurityEvent[] = [];
    expect(await pending.drain((e) => Promise.resolve((told.push(e), true)))).toBe(2);
    expect(told.map((e) => e.at)).toEqual([1_001, 1_002]);
  });

  it('a row another key sealed (or that was altered) is dropped and reported, the others told', async () => {
    const pending = new PendingIncidents({ db, hub });
    await pending.add(event(0));
    const other = await generateX25519Identity();
    await new PendingIncidents({ db, hub: { identity: other, recipient: await identityToRecipient(other) } }).add(event(1));
    await pending.add(event(2));
    const unreadable: unknown[] = [];
    const told: SecurityEvent[] = [];
    expect(await pending.drain((e) => Promise.resolve((told.push(e), true)), (error) => unreadable.push(error))).toBe(2);
    expect(told.map((e) => e.at)).toEqual([1_000, 1_002]);
    expect(unreadable).toHaveLength(1);
    expect(pending.count()).toBe(0);
  });

  it('kept rows survive closing and reopening the database', async () => {
    await new PendingIncidents({ db, hub }).add(event(7));
    db.close();
    db = openDatabase(dir);
    const told: SecurityEvent[] = [];
    await new PendingIncidents({ db, hub }).drain((e) => Promise.resolve((told.push(e), true)));
    expect(told).toEqual([event(7)]);
  });
});
