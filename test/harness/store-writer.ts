/**
 * A child process for the kill -9 test: opens the store in `argv[2]` (a data directory) and puts objects
 * encrypted to the recipient `argv[3]` in a loop from two concurrent writers, printing `committed <id>` once
 * each put has resolved. It prints `ready` once the store is open. It never ends by itself.
 *
 *   node --import tsx test/harness/store-writer.ts <dataDir> <recipient>
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encryptStream } from '../../src/crypto/age-stream.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';

/** The plaintext of object `id`: 1 B to ~400 KiB, derived from the id so the test can check it. */
export function plaintextFor(id: string): Buffer {
  const length = 1 + (createHash('sha256').update(`len:${id}`).digest().readUInt32BE(0) % (400 * 1024));
  return createHash('shake256', { outputLength: length }).update(id).digest();
}

/** Feeds the plaintext in 16 KiB pieces, yielding to the event loop, so a kill can land mid-write. */
async function* slowly(bytes: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += 16 * 1024) {
    yield bytes.subarray(i, i + 16 * 1024);
    await new Promise((r) => setImmediate(r));
  }
}

async function writer(store: ObjectStore, recipient: string): Promise<never> {
  for (;;) {
    const objectId = newObjectId();
    await store.put({ objectId, kind: 'clip', cameraId: 'cam1', capturedAt: Date.now(), body: encryptStream([recipient], slowly(plaintextFor(objectId))) });
    process.stdout.write(`committed ${objectId}\n`);
  }
}

async function main(dataDir: string, recipient: string): Promise<void> {
  const db = openDatabase(dataDir);
  const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
  process.stdout.write('ready\n');
  await Promise.all([writer(store, recipient), writer(store, recipient)]);
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  const [dataDir, recipient] = process.argv.slice(2);
  if (dataDir === undefined || recipient === undefined) throw new Error('usage: store-writer.ts <dataDir> <recipient>');
  main(dataDir, recipient).catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  });
}
