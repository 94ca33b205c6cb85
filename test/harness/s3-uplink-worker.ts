/**
 * A child process that runs an Uploader over the s3 transport until its outbox has nothing queued or
 * uploading, then exits 0. Tests kill it (SIGKILL) mid multipart upload and start it again on the same
 * database and bucket.
 *
 * Usage: node --import tsx test/harness/s3-uplink-worker.ts <json options>
 *   { dataDir, endpoint, bucket, prefix?, hub, credentialsFile, enqueue?: [{objectId, path, bytes, kind}], bandwidth? }
 * Prints `started`, then `checked <json>` when the store's check at start is done, and `done <json stats>` at the end.
 */
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { Outbox, type OutboxEntry } from '../../src/uplink/outbox.js';
import { S3ObjectStore } from '../../src/uplink/s3-object-store.js';
import { Uploader } from '../../src/uplink/uploader.js';
import { allowAllGate } from './allow-all-gate.js';

interface WorkerOptions {
  dataDir: string;
  endpoint: string;
  bucket: string;
  prefix?: string;
  hub: string;
  credentialsFile: string;
  enqueue?: OutboxEntry[];
  bandwidth?: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as WorkerOptions;
const db = openDatabase(options.dataDir);
const outbox = new Outbox(db);
for (const entry of options.enqueue ?? []) outbox.enqueue(entry);
const uploader = new Uploader({
  outbox,
  gate: allowAllGate,
  remote: new S3ObjectStore({
    endpoint: options.endpoint,
    region: 'us-east-1',
    bucket: options.bucket,
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    forcePathStyle: true,
    credentialsFile: options.credentialsFile,
    hubPseudonym: options.hub,
    ...(options.bandwidth === undefined ? {} : { bandwidthBytesPerSecond: options.bandwidth }),
  }),
  logger: silentLogger(),
  backoffBaseMs: 50,
  backoffCapMs: 500,
  onStoreCheck: (result) => process.stdout.write(`checked ${JSON.stringify(result)}\n`),
});
uploader.start();
process.stdout.write('started\n');
const timer = setInterval(() => {
  const stats = outbox.stats();
  if (stats.queued + stats.uploading > 0) return;
  clearInterval(timer);
  void uploader.stop().then(() => {
    process.stdout.write(`done ${JSON.stringify(stats)}\n`);
    db.close();
  });
}, 50);
