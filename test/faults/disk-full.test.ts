import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConsent } from '../../src/commands/consent.js';
import type { CommandIO } from '../../src/commands/io.js';
import { decryptToBuffer, encryptStream } from '../../src/crypto/age-stream.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { applyRetention } from '../../src/store/retention.js';
import { hasPeer, peersRequired } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const BIN = fileURLToPath(new URL('../../bin/camveil.js', import.meta.url));
const MiB = 2 ** 20;
const quiet: CommandIO = { stdout: () => undefined, stderr: () => undefined };

/** Mounts a tmpfs of `size` at `dir`; returns why not when the machine does not allow it. */
function mountTmpfs(dir: string, size: string): string | undefined {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error !== undefined) return `mount could not run: ${r.error.message}`;
  return r.status === 0 ? undefined : `mount -t tmpfs refused (${r.stderr.trim() || `exit ${r.status}`}); run as root`;
}

/** Writes zeros into `file` until the file system is full; returns the bytes written. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
  return written;
}

const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-diskfull-'));
const disk = path.join(root, 'disk');
mkdirSync(disk);
const refused = mountTmpfs(disk, '12m');
if (refused !== undefined && peersRequired) throw new Error(`CAMVEIL_REQUIRE_PEERS=1 but a tmpfs cannot be mounted: ${refused}`);

describe.skipIf(refused !== undefined || !hasPeer('ffmpeg'))(`a full disk does not kill the hub${refused === undefined ? '' : ` [skipped: ${refused}]`}`, () => {
  afterAll(() => {
    spawnSync('umount', [disk]);
    rmSync(root, { recursive: true, force: true });
  });

  describe('camveil run with its data directory on a 12 MiB tmpfs', () => {
    let configFile: string;
    let identity: string;
    const dataDir = path.join(disk, 'hub');

    beforeAll(async () => {
      identity = await generateX25519Identity();
      const raw = {
        hub: { id: 'full-hub', region: 'DE' },
        dataDir,
        household: { recipients: [await identityToRecipient(identity)] },
        // Small frames keep a clip well under a MiB: the disk is a few clips big.
        cameras: [{ id: 'porch', source: `file:${motionVideo({ seconds: 12, motionAt: 2, motionUntil: 5, width: 640, height: 360 })}` }],
        recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 },
        // No reserve: this test is about the write that fails, not the quota that avoids it.
        storage: { reserveMiB: 0 },
      };
      configFile = path.join(root, 'camveil.json');
      writeFileSync(configFile, JSON.stringify(raw));
      for (const action of [
        { kind: 'accept-policy' as const, version: '2021-10-31' },
        { kind: 'grant' as const, consent: 'localRecording' },
      ]) {
        expect(await runConsent(action, { config: configFile }, quiet)).toBe(0);
      }
    });

    it('says CAMVEIL_E_STORE_WRITE_FAILED once per burst, keeps running, trusts nothing half-written, recovers when space returns', async () => {
      const objects = path.join(dataDir, 'objects');
      const stored = () => readdirSync(objects).filter((f) => f.endsWith('.age')).length;
      const child = spawn(process.execPath, [BIN, '--log-level', 'debug', 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let exited: number | undefined;
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => (exited = code ?? -1));
      type Line = { msg: string; level: number; code?: string; cause?: string; failedWrites?: number; err?: { code?: string; cause?: { code?: string } } };
      const lines = () => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
      const alive = () => exited === undefined;
      const filler = path.join(disk, 'filler');
      try {
        await waitFor('a first event stored (snapshot, clip, event record)', () => !alive() || (existsDir(objects) && stored() >= 3), 90_000);
        expect(alive(), stderr).toBe(true);
        const before = stored();
        const filled = fill(filler);
        console.info(`disk-full: filled ${(filled / MiB).toFixed(1)} MiB; ${before} objects stored before`);

        // Two motion events' worth of writes fail (snapshot, clip): one error line, the rest counted at debug.
        await waitFor('three failed writes', () => !alive() || lines().filter((l) => l.msg === 'store: another write failed').length >= 2, 90_000);
        expect(alive(), stderr).toBe(true);
        const errors = lines().filter((l) => l.level >= 50);
        const storeErrors = errors.filter((l) => l.code === 'CAMVEIL_E_STORE_WRITE_FAILED' || l.err?.code === 'CAMVEIL_E_STORE_WRITE_FAILED');
        expect(storeErrors, JSON.stringify(errors)).toHaveLength(1);
        expect(storeErrors[0]!.err?.cause?.code).toBe('ENOSPC');
        expect(errors.filter((l) => /keeps running$/.test(l.msg))).toEqual([]);
        expect(stored()).toBe(before);

        rmSync(filler);
        await waitFor('writes to succeed again', () => !alive() || lines().some((l) => l.msg === 'store: writes succeed again'), 90_000);
        await waitFor('a new object stored', () => !alive() || stored() > before, 30_000);
        expect(alive(), stderr).toBe(true);
        const recovered = lines().find((l) => l.msg === 'store: writes succeed again')!;
        expect(recovered.failedWrites).toBeGreaterThanOrEqual(3);
        console.info(`disk-full: ${recovered.failedWrites} writes failed during the burst, 1 error line; ${stored() - before} objects stored after space returned`);
      } finally {
        if (alive()) child.kill('SIGTERM');
        await new Promise((resolve) => (exited === undefined ? child.once('close', resolve) : resolve(undefined)));
        rmSync(filler, { force: true });
      }
      expect(exited, stderr).toBe(0);

      // Nothing half-written is left or trusted: every file has its row, every row its file, each decrypts.
      const db = openDatabase(dataDir);
      try {
        const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
        expect(store.lastRecovery).toEqual({ tmpRemoved: 0, unindexedRemoved: 0, missingFiles: 0 });
        const rows = store.list({ limit: 10_000 });
        expect(rows.length).toBe(stored());
        for (const row of rows) expect((await decryptToBuffer(identity, readFileSync(row.path))).length).toBeGreaterThan(0);
      } finally {
        db.close();
      }
    }, 300_000);
  });

  it('caps the quota at what the store holds plus the free space less the reserve', async () => {
    const dataDir = path.join(disk, 'quota');
    const db = openDatabase(dataDir);
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    // A 2 GiB quota on a 12 MiB disk with a 4 MiB reserve: the free space decides.
    const retention = { retentionDays: 30, quotaBytes: 2048 * MiB, reserveBytes: 4 * MiB };
    const store = ObjectStore.open({ db, dataDir, logger: silentLogger(), retention });
    try {
      const base = Date.now();
      const put = (n: number) =>
        store.put({ objectId: newObjectId(), kind: 'clip', cameraId: 'c', capturedAt: base + n, body: encryptStream([recipient], [Buffer.alloc(MiB, n)]) });
      for (let i = 0; i < 12; i++) await put(i);
      const free = store.freeBytes()!;
      // Eviction kept the reserve free (within one object) instead of running into ENOSPC.
      expect(free).toBeGreaterThanOrEqual(4 * MiB - 1.1 * MiB);
      // The oldest went first; the newest is always kept.
      expect(store.count()).toBeLessThan(12);
      expect(store.count()).toBeGreaterThan(0);
      expect(store.list({ order: 'oldest', limit: 1 })[0]!.capturedAt).toBeGreaterThan(base);
      expect(store.list({ order: 'newest', limit: 1 })[0]!.capturedAt).toBe(base + 11);
      const run = applyRetention(store, retention);
      expect(run.effectiveQuotaBytes).toBeLessThan(12 * MiB);
      console.info(`disk-full: quota 2048 MiB capped to ${(run.effectiveQuotaBytes / MiB).toFixed(1)} MiB on a 12 MiB tmpfs, ${store.count()} of 12 objects kept`);
    } finally {
      db.close();
    }
  }, 60_000);
});

function existsDir(dir: string): boolean {
  try {
    readdirSync(dir);
    return true;
  } catch {
    return false;
  }
}
