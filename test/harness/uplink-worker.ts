/**
 * A child process that runs an Uploader until its outbox has nothing queued or uploading, then exits 0.
 * Tests kill it (SIGKILL) mid-upload and start it again on the same database.
 *
 * Usage: node --import tsx test/harness/uplink-worker.ts <json options>
 *   { dataDir, endpoint, hub, tokenFile, enqueue?: [{objectId, path, bytes, kind}], bandwidth? }
 * Prints `started` once uploading and `done <json stats>` at the end.
 */
import { silentLogger } from '../../src/log.js';
import { allowAllGate } from './allow-all-gate.js';
import { openDatabase } from '../../src/store/database.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { Outbox, type OutboxEntry } from '../../src/uplink/outbox.js';
import { HttpReceiverStore } from '../../src/uplink/http-receiver-store.js';
import { Uploader } from '../../src/uplink/uploader.js';

interface WorkerOptions {
  dataDir: string;
  endpoint: string;
  hub: string;
  tokenFile: string;
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
  remote: new HttpReceiverStore({
    endpoint: validateEndpoint(options.endpoint),
    hubPseudonym: options.hub,
    tokenFile: options.tokenFile,
    ...(options.bandwidth === undefined ? {} : { bandwidthBytesPerSecond: options.bandwidth }),
  }),
  logger: silentLogger(),
  backoffBaseMs: 50,
  backoffCapMs: 500,
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
