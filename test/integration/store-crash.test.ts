import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, describe, expect, it } from 'vitest';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { plaintextFor } from '../harness/store-writer.js';

const WRITER = fileURLToPath(new URL('../harness/store-writer.ts', import.meta.url));
const ROUNDS = 5;

const dataDir = mkdtempSync(join(tmpdir(), 'camveil-crash-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/**
 * Starts the writer, SIGKILLs it `delayMs` after it reports its first committed object (not after it opens
 * the store: on busy cores a fixed time after opening may pass before anything is written, and the round
 * would prove nothing); resolves with the ids it reported committed.
 */
function runAndKill(recipient: string, delayMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    // node directly rather than npx: the signal must reach the process that writes, not a wrapper.
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dataDir, recipient], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      if (timer === undefined && /^committed [a-z2-7]{26}\n/m.test(out)) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => (err += text));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited with ${code ?? signal}: ${err}`));
      // Only complete lines count: the kill may cut the last one.
      else resolve([...out.matchAll(/^committed ([a-z2-7]{26})\n/gm)].map((m) => m[1]!));
    });
  });
}

function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('store crash safety (kill -9)', () => {
  it(`keeps every committed object across ${ROUNDS} SIGKILLs and leaves nothing half-written`, async () => {
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const committed: string[] = [];
    let tmpLeft = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const delay = 50 + Math.floor(Math.random() * 350);
      committed.push(...(await runAndKill(recipient, delay)));
      // Each round's leftovers are cleaned by the next round's open; counted to show kills land mid-write.
      tmpLeft += readdirSync(join(dataDir, 'objects')).filter((f) => f.endsWith('.tmp')).length;
    }
    expect(committed.length).toBeGreaterThan(0);
    console.info(`store-crash: ${committed.length} objects reported committed, ${tmpLeft} temp files left by ${ROUNDS} kills`);

    const db = openDatabase(dataDir);
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
      // A kill can leave temp files and renamed-but-unindexed files; never a row without its file.
      expect(store.lastRecovery?.missingFiles).toBe(0);
      expect(store.recover()).toEqual({ tmpRemoved: 0, unindexedRemoved: 0, missingFiles: 0 });
      const files = readdirSync(store.dir);
      expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
      const rows = new Set(store.list({ limit: 1_000_000 }).map((o) => o.objectId));
      expect(files.filter((f) => !rows.has(f.slice(0, -'.age'.length)))).toEqual([]);
      expect(rows.size).toBe(files.length);
      for (const objectId of committed) {
        const object = store.get(objectId);
        expect(object, objectId).toBeDefined();
        const plaintext = await decryptToBuffer(identity, readFileSync(object!.path));
        expect(digest(plaintext)).toBe(digest(plaintextFor(objectId)));
      }
      // Rows not reported were committed just before a kill cut the print: they must be whole too.
      for (const objectId of rows) {
        const plaintext = await decryptToBuffer(identity, readFileSync(store.pathOf(objectId)));
        expect(digest(plaintext)).toBe(digest(plaintextFor(objectId)));
      }
    } finally {
      db.close();
    }
  }, 120_000);
});

const QUEUE_WRITER = fileURLToPath(new URL('../harness/queue-writer.ts', import.meta.url));

/** Runs the queue writer until it holds at `hold`, SIGKILLs it there; resolves with the id it held on. */
function killWhileHolding(dir: string, recipient: string, hold: string, count: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', QUEUE_WRITER, dir, recipient, hold, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let held: string | undefined;
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      const m = /^holding ([a-z2-7]{26})$/m.exec(out);
      if (held === undefined && m !== null) {
        held = m[1]!;
        child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => (err += text));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL' || held === undefined) reject(new Error(`queue writer ended with ${code ?? signal} without holding: ${out}\n${err}`));
      else resolve(held);
    });
  });
}

describe('store commit and outbox enqueue (kill -9 between them)', () => {
  const cases = [
    // The transaction was open: neither the object nor its queue entry exists after the restart.
    { hold: 'in-commit', stored: 3, heldStored: false },
    { hold: 'after-commit', stored: 4, heldStored: true },
  ] as const;
  for (const c of cases) {
    it(`${c.hold}: after the restart every stored object is queued for upload`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'camveil-queue-crash-'));
      try {
        const recipient = await identityToRecipient(await generateX25519Identity());
        const held = await killWhileHolding(dir, recipient, c.hold, 3);
        const db = openDatabase(dir);
        try {
          const store = ObjectStore.open({ db, dataDir: dir, logger: silentLogger() });
          const outbox = new Outbox(db);
          const rows = store.list({ limit: 100 });
          expect(rows).toHaveLength(c.stored);
          expect(store.get(held) !== undefined).toBe(c.heldStored);
          const notQueued = rows.filter((r) => outbox.get(r.objectId)?.state !== 'queued');
          expect(notQueued.map((r) => r.objectId)).toEqual([]);
          // Each queued item's staged link is there; a link without a queued row is what the start-up sweep removes.
          for (const r of rows) expect(readdirSync(join(dir, 'outbox'))).toContain(`${r.objectId}.age`);
          if (!c.heldStored) {
            expect(store.lastRecovery?.unindexedRemoved).toBe(1);
            expect(outbox.get(held)).toBeUndefined();
          }
        } finally {
          db.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000);
  }

  it('separate (how the gateway queued before): the same kill leaves a stored object no queue knows of', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'camveil-queue-crash-'));
    try {
      const recipient = await identityToRecipient(await generateX25519Identity());
      const held = await killWhileHolding(dir, recipient, 'separate', 3);
      const db = openDatabase(dir);
      try {
        const store = ObjectStore.open({ db, dataDir: dir, logger: silentLogger() });
        expect(store.get(held)).toBeDefined();
        expect(new Outbox(db).get(held)).toBeUndefined();
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
