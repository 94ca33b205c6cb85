import { parentPort } from 'node:worker_threads';
import { asCamveilError, CamveilError } from '../errors.js';
import type { FromModelWorker, ToModelWorker } from './model-worker-protocol.js';
import { NET_HOSTS } from './net-hosts.js';
import type { NetHost } from './net-host.js';

/**
 * The model worker: runs the nets of whichever analyser asks, by name, off the main thread so a 100–300 ms
 * frame never stalls ingest, motion or MQTT. One request at a time, in order. The analysers on the main
 * thread decide what reaches here (they ask the gate); this file never asks the gate and never sees a
 * camera id.
 */
const port = parentPort;
if (port === null) throw new Error('model-worker.ts must run in a worker thread');

const hosts = new Map<string, NetHost>();

function send(message: FromModelWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

function hostOf(net: string): NetHost {
  let host = hosts.get(net);
  if (host !== undefined) return host;
  const make = Object.hasOwn(NET_HOSTS, net) ? NET_HOSTS[net] : undefined;
  if (make === undefined) throw new CamveilError('CAMVEIL_E_INTERNAL', `the model worker hosts no net named ${JSON.stringify(net)}`, { where: 'models' });
  host = make();
  hosts.set(net, host);
  return host;
}

async function handle(message: ToModelWorker): Promise<void> {
  const { seq, net } = message;
  switch (message.type) {
    case 'load': {
      const backend = await hostOf(net).load();
      send({ type: 'loaded', seq, net, backend });
      return;
    }
    case 'unload': {
      const host = hostOf(net);
      host.unload();
      send({ type: 'unloaded', seq, net, calls: host.calls() });
      return;
    }
    case 'run': {
      const started = performance.now();
      const host = hostOf(net);
      await host.load();
      const { output, transfer } = await host.run(message.input);
      send({ type: 'result', seq, net, output, ms: performance.now() - started, calls: host.calls() }, transfer);
      return;
    }
  }
}

// Messages are handled strictly one after another: a frame never races a load or an unload.
let chain: Promise<void> = Promise.resolve();
port.on('message', (message: ToModelWorker) => {
  chain = chain.then(async () => {
    try {
      await handle(message);
    } catch (error) {
      const e = asCamveilError(error, message.net);
      send({ type: 'error', seq: message.seq, net: message.net, code: e.code, message: e.message });
    }
  });
});
