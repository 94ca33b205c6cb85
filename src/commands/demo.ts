import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import type { GlobalOptions } from '../cli.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { reportEvents } from '../demo/reporter.js';
import { ensureSampleVideo } from '../demo/sample-video.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { localRequest } from '../policy/consent-service.js';
import { startReceiver } from '../receiver/server.js';
import type { CommandIO } from './io.js';
import { untilStopRequested } from './service-lifecycle.js';

/** A free TCP port on loopback for the demo's broker. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The package's root: the sample video is cached under it so a second run starts at once. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface DemoSetup {
  mqttUrl: string;
  sampleVideo: string;
  dataDir: string;
  householdRecipient: string;
  receiverUrl: string;
  tokenFile: string;
}

/** The embedded defaults: one looping sample camera, sealed to a demo household, uploaded to a loopback receiver. */
export function demoConfig(setup: DemoSetup): Config {
  return validateConfig(demoConfigInput(setup), 'embedded demo defaults', setup.dataDir);
}

function demoConfigInput(setup: DemoSetup) {
  return {
      hub: { id: 'demo-hub', region: 'DE' },
      dataDir: setup.dataDir,
      cameras: [
        {
          id: 'sample-cam',
          name: 'Sample camera (looping video)',
          source: `file:${setup.sampleVideo}`,
          analysis: { fps: 2, width: 640, height: 360 },
          motion: { sensitivity: 0.5, minArea: 0.01 },
          // The lower-right corner stands in for a neighbour's window: ignored by analysis, blacked out in snapshots.
          privacyMasks: [[[0.8, 0.75], [1, 0.75], [1, 1], [0.8, 1]]],
        },
      ],
      recording: { preRollSeconds: 2, postRollSeconds: 3, maxClipSeconds: 30 },
      household: { recipients: [setup.householdRecipient] },
      // DE is in the EU residency zone: the loopback receiver plays the EU cloud.
      uplink: { enabled: true, endpoints: { eu: setup.receiverUrl }, tokenFile: setup.tokenFile },
      // The demo's own broker, inside the hub process, on loopback: the control plane for `camveil app`.
      mqtt: { url: setup.mqttUrl, embeddedBroker: true },
  };
}

/**
 * `camveil demo [--for SECONDS]`: the gateway on embedded defaults, printing what happens in readable
 * lines: a looping sample camera, its clips and snapshots sealed with age to a demo household key and
 * uploaded to a reference receiver on loopback. The household key is written next to the data only
 * because there is no phone app in the demo; it is what the app would hold.
 */
export async function runDemo(opts: { for?: number; dataDir?: string }, globals: GlobalOptions, io: CommandIO): Promise<number> {
  const root = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'camveil-demo-'));
  const dataDir = path.join(root, 'hub');
  const cloudDir = path.join(root, 'cloud');
  mkdirSync(root, { recursive: true, mode: 0o700 });
  io.stdout('camveil demo: a looping sample camera on this machine; nothing leaves loopback.');
  io.stdout('Preparing the sample camera video (first run only: about ten seconds)…');
  const sampleVideo = await ensureSampleVideo(path.join(PACKAGE_ROOT, '.cache', 'demo'));

  const identity = await generateX25519Identity();
  const householdRecipient = await identityToRecipient(identity);
  const keyFile = path.join(root, 'household.key');
  writeFileSync(keyFile, `# the demo household's key: what the phone app would hold\n${identity}\n`, { mode: 0o600 });
  const token = randomBytes(24).toString('base64url');
  const tokenFile = path.join(root, 'cloud.token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const receiver = await startReceiver({ dir: cloudDir, token });
  const mqttUrl = `mqtt://127.0.0.1:${await freeLoopbackPort()}`;

  const setup = { mqttUrl, sampleVideo, dataDir, householdRecipient, receiverUrl: receiver.url, tokenFile };
  const config = demoConfig(setup);
  // The same settings as a file, so that `camveil consent …` and `camveil audit …` can be tried against the running demo.
  writeFileSync(path.join(root, 'camveil.json'), JSON.stringify({ ...demoConfigInput(setup), mqtt: { url: mqttUrl } }, null, 2));
  // The readable lines go to stdout; the JSON logs only carry warnings and errors unless asked for more.
  const logger = createLogger({ level: globals.logLevel ?? 'warn', pretty: globals.pretty, destination: process.stderr });
  const gateway = new Gateway({ config, logger });
  const stopReporting = reportEvents(gateway.bus, (line) => io.stdout(line));
  io.stdout(`Hub data: ${dataDir}. Local cloud receiver: ${receiver.url} (storing in ${cloudDir}).`);
  io.stdout(`Everything is sealed with age to the demo household key ${householdRecipient.slice(0, 16)}…`);
  io.stdout(`Press Ctrl-C to stop${opts.for === undefined ? '' : ` (stopping by itself after ${opts.for} s)`}.`);
  try {
    await gateway.start();
    // In real use the household does this from the phone app (signed MQTT commands); a fresh hub keeps
    // and sends nothing until it has.
    io.stdout(`The demo household accepts privacy policy ${config.privacy.policyVersion} and grants localRecording and cloudUpload.`);
    await gateway.consent.acceptPolicy(config.privacy.policyVersion, localRequest('demo: accept the policy in force'));
    await gateway.consent.grant('localRecording', localRequest('demo: grant localRecording'));
    await gateway.consent.grant('cloudUpload', localRequest('demo: grant cloudUpload'));
    const configFile = path.join(root, 'camveil.json');
    const appFlags = `--broker ${mqttUrl} --hub demo-hub --state ${path.join(root, 'app-state.json')}`;
    io.stdout(`Withdraw it from another terminal and watch uploads stop: npx camveil consent withdraw cloudUpload --config ${configFile}`);
    io.stdout(`Or play the phone app over MQTT (${mqttUrl}): npx camveil pair --config ${configFile}, then`);
    io.stdout(`  npx camveil app pair ${appFlags} --identity ${keyFile} --code CODE`);
    io.stdout(`  npx camveil app consent-withdraw cloudUpload ${appFlags}     (and consent-grant, which must be signed)`);
    io.stdout(`  npx camveil app events ${appFlags} --identity ${keyFile}      (sealed alerts, decrypted)`);
    await untilStopRequested(opts.for);
    await gateway.stop();
  } finally {
    stopReporting();
    await receiver.close();
  }
  const received = receiver.received();
  const bytes = received.reduce((sum, r) => sum + r.bytes, 0);
  io.stdout(`Stopped. The receiver holds ${received.length} object(s), ${(bytes / 2 ** 20).toFixed(1)} MB, all age ciphertext.`);
  const example = received.find((r) => r.bytes > 100_000) ?? received[0];
  if (example !== undefined) {
    io.stdout('Open one as the household app would:');
    const file = path.join(cloudDir, example.hub, `${example.objectId}.age`);
    io.stdout(`  npx camveil open --identity ${keyFile} ${file} --out object.bin   # prints the manifest, writes the MP4/JPEG`);
    io.stdout(`  age -d -i ${keyFile} ${file} > sealed-plaintext.bin           # or with the age CLI: 4-byte length, manifest, media`);
  }
  return 0;
}
