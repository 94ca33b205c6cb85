/**
 * A child process for the store-commit / outbox-enqueue kill test: seals snapshots through the real
 * SealedMediaSink into an ObjectStore and an Outbox in `<dataDir>`, staging each upload the way the gateway
 * does, and holds (blocks the process) at the moment named by `hold`, printing `holding <objectId>` first so
 * the test's SIGKILL lands exactly there:
 *   - `in-commit`: inside the store's transaction, the object's row written, the outbox row about to be;
 *   - `after-commit`: the transaction committed, the uploader not yet told;
 *   - `separate`: the store's commit done and the enqueue not yet made, with the queue entry made after the
 *     commit instead of in it (how the gateway queued before): shows the window the transaction closes.
 * It stores `count` snapshots before the one it holds on, printing `stored <objectId>` for each.
 *
 *   node --import tsx test/harness/queue-writer.ts <dataDir> <recipient> <hold> <count>
 */
import path from 'node:path';
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { SealedPublisher, type UploadQueue } from '../../src/publishing/sealed-publisher.js';
import { SealedMediaSink } from '../../src/store/sealed-media-sink.js';
import { StagedUploads } from '../../src/store/staged-uploads.js';
import { Outbox, type OutboxEntry } from '../../src/uplink/outbox.js';

const [dataDir, recipient, hold, countText] = process.argv.slice(2);
if (dataDir === undefined || recipient === undefined || hold === undefined) throw new Error('usage: queue-writer.ts <dataDir> <recipient> <hold> <count>');
const count = Number(countText ?? '0');
let stored = 0;
let current = '';

/** Blocks the whole process (no event loop turn, no commit): the SIGKILL lands with the transaction open. */
function holdHere(): void {
  process.stdout.write(`holding ${current}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
}

const db = openDatabase(dataDir);
const store = ObjectStore.open({ db, dataDir, logger: silentLogger() });
const real = new Outbox(db);
const outbox = {
  enqueue(entry: OutboxEntry): boolean {
    current = entry.objectId;
    if (stored === count && (hold === 'in-commit' || hold === 'separate')) holdHere();
    return real.enqueue(entry);
  },
};
const staged = new StagedUploads({
  outbox,
  staging: path.join(dataDir, 'outbox'),
  mayQueue: () => true,
  queued: () => {
    if (stored === count && hold === 'after-commit') holdHere();
  },
  logger: silentLogger(),
});
const uploads: UploadQueue =
  hold === 'separate'
    ? { enqueue: (item) => void staged.prepare(item).then((c) => (c?.inTransaction(), c?.committed())) }
    : { enqueue: () => undefined, prepare: (item) => staged.prepare(item) };
const sink = new SealedMediaSink({ publisher: new SealedPublisher({ recipients: () => [recipient], writer: store, uploads }), events: store, cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa', policyVersion: () => '2021-10-31', logger: silentLogger() });

for (let i = 0; i <= count; i++) {
  const before = store.count();
  await sink.snapshot({ eventId: `evt-${i}`, cameraId: 'porch', at: Date.now(), contentType: 'image/jpeg', width: 2, height: 2, jpeg: Buffer.from(`jpeg ${i}`) });
  if (store.count() > before) process.stdout.write(`stored ${store.list({ limit: 1, order: 'newest' })[0]?.objectId}\n`);
  stored += 1;
  // `separate` queues after the commit on a later turn: give it one.
  await new Promise((r) => setImmediate(r));
}
process.stdout.write('done\n');
