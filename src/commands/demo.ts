import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import type { GlobalOptions } from '../cli/options.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { reportEvents } from '../demo/reporter.js';
import { ensureSampleVideo } from '../demo/sample-video.js';
import sharp from 'sharp';
import { FaceEngine } from '../analysis/faces/face-engine.js';
import { readImageFile } from '../analysis/faces/image-input.js';
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
  region: string;
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
      hub: { id: 'demo-hub', region: setup.region },
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
          faceRecognition: true,
        },
      ],
      // The sample camera is a video file, not a device model the rules list: the demo household declares
      // it capable, as a household may for its own unlisted cameras.
      privacy: { faceCapableOverride: true },
      recording: { preRollSeconds: 2, postRollSeconds: 3, maxClipSeconds: 30 },
      household: { recipients: [setup.householdRecipient] },
      // The loopback receiver plays the cloud of whichever residency zone the region picks.
      uplink: { enabled: true, endpoints: { eu: setup.receiverUrl, us: setup.receiverUrl, cn: setup.receiverUrl, global: setup.receiverUrl }, tokenFile: setup.tokenFile },
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
export async function runDemo(opts: { for?: number; dataDir?: string; region?: string }, globals: GlobalOptions, io: CommandIO): Promise<number> {
  const region = opts.region ?? 'DE';
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

  const setup = { region, mqttUrl, sampleVideo, dataDir, householdRecipient, receiverUrl: receiver.url, tokenFile };
  const config = demoConfig(setup);
  // The same settings as a file, so that `camveil consent …` and `camveil audit …` can be tried against the running demo.
  writeFileSync(path.join(root, 'camveil.json'), JSON.stringify({ ...demoConfigInput(setup), mqtt: { url: mqttUrl } }, null, 2));
  // The readable lines go to stdout; the JSON logs only carry warnings and errors unless asked for more.
  const logger = createLogger({ level: globals.logLevel ?? 'warn', pretty: globals.pretty, destination: process.stderr });
  const gateway = new Gateway({ config, logger });
  const stopReporting = reportEvents(gateway.bus, (line) => io.stdout(line));
  let stopFaceLines: (() => void) | undefined;
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
    await gateway.consent.grant('faceRecognition', localRequest('demo: grant faceRecognition'));
    const enrolment = gateway.gate.mayEnrolFaces();
    const names = enrolment.allowed ? await enrolDemoPerson(gateway, io) : new Map<string, string>();
    if (!enrolment.allowed) io.stdout(`No one is enrolled: face enrolment is refused here (${enrolment.reason}).`);
    const faces = gateway.gate.mayRecogniseFaces('sample-cam');
    io.stdout(
      faces.allowed
        ? `Face recognition on sample-cam (region ${region}): allowed. Known faces are reported below; nothing else is kept of them.`
        : `Face recognition on sample-cam (region ${region}): refused (${faces.reason}); the face model is not even called.`,
    );
    stopFaceLines = reportFaces(gateway, names, (line) => io.stdout(line));
    const configFile = path.join(root, 'camveil.json');
    const appFlags = `--broker ${mqttUrl} --hub demo-hub --state ${path.join(root, 'app-state.json')}`;
    io.stdout(`Withdraw it from another terminal and watch uploads stop: npx camveil consent withdraw cloudUpload --config ${configFile}`);
    io.stdout(`Or play the phone app over MQTT (${mqttUrl}): npx camveil pair --config ${configFile}, then`);
    io.stdout(`  npx camveil app pair ${appFlags} --identity ${keyFile} --code CODE`);
    io.stdout(`  npx camveil app consent withdraw cloudUpload ${appFlags}     (and consent grant, which must be signed)`);
    io.stdout(`  npx camveil app events --follow ${appFlags} --identity ${keyFile}      (sealed alerts, decrypted)`);
    await untilStopRequested(opts.for);
    await gateway.stop();
  } finally {
    stopReporting();
    stopFaceLines?.();
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

/**
 * Enrols the largest face of the first sample photo as "Demo person", from a crop made in memory (the
 * photo holds three people; enrolment wants exactly one face per photo). Returns person id → name for the
 * demo's own console lines; the name is stored only sealed to the hub key.
 */
async function enrolDemoPerson(gateway: Gateway, io: CommandIO): Promise<Map<string, string>> {
  const photo = path.join(PACKAGE_ROOT, 'node_modules', '@vladmandic', 'face-api', 'demo', 'sample1.jpg');
  const engine = await FaceEngine.open();
  try {
    const image = await readImageFile(photo);
    const face = (await engine.detect(image, { pad: 'never' })).filter((f) => f.quality.ok).sort((a, b) => b.box.width * b.box.height - a.box.width * a.box.height)[0];
    if (face === undefined) return new Map();
    const margin = Math.round(face.box.width * 0.4);
    const left = Math.max(0, Math.round(face.box.x) - margin);
    const top = Math.max(0, Math.round(face.box.y) - margin);
    const width = Math.min(image.width - left, Math.round(face.box.width) + 2 * margin);
    const height = Math.min(image.height - top, Math.round(face.box.height) + 2 * margin);
    const crop = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .extract({ left, top, width, height })
      .raw()
      .toBuffer();
    const person = await gateway.enrolment.enrol(engine, {
      name: 'Demo person',
      photos: [{ label: 'sample1.jpg (crop)', image: { width, height, data: crop, channels: 3 } }],
      minor: false,
    });
    io.stdout(`Enrolled "Demo person" (${person.personId}) from a face cropped in memory from sample1.jpg; the photo is not kept.`);
    return new Map([[person.personId, 'Demo person']]);
  } finally {
    engine.unload();
  }
}

/** Console lines for face results: the demo's own terminal may show the name it enrolled. */
function reportFaces(gateway: Gateway, names: ReadonlyMap<string, string>, write: (line: string) => void): () => void {
  const clock = () => new Date().toTimeString().slice(0, 8);
  const offs = [
    gateway.bus.on('face.known', (e) =>
      write(`${clock()}  ${e.cameraId.padEnd(12)} known face: ${names.get(e.personId) ?? e.personId} (distance ${e.distance.toFixed(2)}; alert sealed to the household)`),
    ),
    gateway.bus.on('face.unknown', (e) => write(`${clock()}  ${e.cameraId.padEnd(12)} unknown face (alert sealed to the household)`)),
  ];
  return () => offs.forEach((off) => off());
}
