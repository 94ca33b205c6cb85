/**
 * A child process that runs an Uploader until its outbox has nothing queued or uploading, then exits 0.
 * Tests kill it (SIGKILL) mid-upload and start it again on the same database (and bucket).
 *
 * Usage: node --import tsx test/harness/uplink-worker.ts <json options> (see uplink-worker-process.ts)
 *   http: { dataDir, endpoint, hub, tokenFile, enqueue?: [{objectId, path, bytes, kind}], bandwidth? }
 *   s3:   { dataDir, endpoint, hub, bucket, prefix?, credentialsFile, enqueue?, bandwidth? }
 * Prints `started`, then `checked <json>` when the store's check at start is done (s3), and
 * `done <json stats>` at the end.
 */
import { silentLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { HttpReceiverStore } from '../../src/uplink/http-receiver-store.js';
import { Outbox, type OutboxEntry } from '../../src/uplink/outbox.js';
import type { RemoteObjectStore } from '../../src/uplink/remote-object-store.js';
import { S3ObjectStore } from '../../src/uplink/s3-object-store.js';
import { Uploader } from '../../src/uplink/uploader.js';
import { allowAllGate } from './allow-all-gate.js';

interface WorkerOptions {
  dataDir: string;
  endpoint: string;
  hub: string;
  /** http: the receiver's bearer token. */
  tokenFile?: string;
  /** s3: the bucket and the credentials file (path style, us-east-1: the local Swift). */
  bucket?: string;
  prefix?: string;
  credentialsFile?: string;
  enqueue?: OutboxEntry[];
  bandwidth?: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as WorkerOptions;
const bandwidth = options.bandwidth === undefined ? {} : { bandwidthBytesPerSecond: options.bandwidth };
const remote: RemoteObjectStore =
  options.credentialsFile === undefined
    ? new HttpReceiverStore({ endpoint: validateEndpoint(options.endpoint), hubPseudonym: options.hub, tokenFile: options.tokenFile ?? '', ...bandwidth })
    : new S3ObjectStore({
        endpoint: options.endpoint,
        region: 'us-east-1',
        bucket: options.bucket ?? '',
        ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
        forcePathStyle: true,
        credentialsFile: options.credentialsFile,
        hubPseudonym: options.hub,
        ...bandwidth,
      });
const db = openDatabase(options.dataDir);
const outbox = new Outbox(db);
for (const entry of options.enqueue ?? []) outbox.enqueue(entry);
const uploader = new Uploader({
  outbox,
  gate: allowAllGate,
  remote,
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
