import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runApp, type AppAction } from '../../src/commands/app.js';
import { runPair } from '../../src/commands/pair.js';
import { validateConfig } from '../../src/config/load.js';
import { MAX_ARGS_BYTES, MAX_PHOTO_BYTES, MAX_PHOTOS, MAX_REQUEST_BYTES, PHOTO_MAX_SIDE } from '../../src/control/request-limits.js';
import { MAX_PADDED_SIDE } from '../../src/analysis/faces/face-engine.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../harness/mosquitto.js';
import { findPlaintext } from '../harness/plaintext-scan.js';
import { waitFor } from '../harness/wait.js';

const FACE_DEMO = path.join(process.cwd(), 'node_modules', '@vladmandic', 'face-api', 'demo');

/**
 * `camveil app faces enrol` with the five photos the schema allows, each as large as a phone takes them: the
 * app scales them to what the face models use before sealing, so the request fits the hub's cap, and the hub
 * enrols a template from every one. A real gateway with its embedded broker, real face models.
 */
describe('camveil app faces enrol: five phone-size photos', () => {
  let root: string;
  let gateway: Gateway;
  let url: string;
  let configFile: string;
  let identityFile: string;
  let state: string;
  const photos: string[] = [];

  const app = async (action: AppAction): Promise<{ code: number; out: string }> => {
    const out: string[] = [];
    const code = await runApp(action, { broker: url, hub: 'photo-hub', state }, { stdout: (t) => out.push(t), stderr: (t) => out.push(t) });
    return { code, out: out.join('\n') };
  };

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-enrol-photos-'));
    const identity = await generateX25519Identity();
    identityFile = path.join(root, 'household.key');
    writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
    url = `mqtt://127.0.0.1:${await freePort()}`;
    const raw = { hub: { id: 'photo-hub', region: 'DE' }, dataDir: path.join(root, 'hub'), household: { recipients: [await identityToRecipient(identity)] }, mqtt: { url, embeddedBroker: true } };
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    state = path.join(root, 'app-state.json');

    // One woman of sample1.jpg, five ways (as taken, mirrored, lighter, darker, softer), each scaled up to
    // a phone camera's 3024 px and saved at JPEG quality 95.
    const face = await sharp(path.join(FACE_DEMO, 'sample1.jpg')).extract({ left: 300, top: 230, width: 420, height: 480 }).toBuffer();
    const variants = [(s: Sharp) => s, (s: Sharp) => s.flop(), (s: Sharp) => s.modulate({ brightness: 1.15 }), (s: Sharp) => s.modulate({ brightness: 0.85 }), (s: Sharp) => s.blur(0.8)];
    for (const [i, variant] of variants.entries()) {
      const file = path.join(root, `photo-${i + 1}.jpg`);
      await variant(sharp(face)).resize({ height: 3024 }).jpeg({ quality: 95 }).toFile(file);
      photos.push(file);
    }
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('the caps agree: five photos of the largest size fit the args cap, and the args the request cap', () => {
    expect(MAX_PHOTOS).toBe(5);
    // The app scales to what the enrolment detector's padded pass takes at most.
    expect(PHOTO_MAX_SIDE).toBe(MAX_PADDED_SIDE);
    const photoArgs = JSON.stringify({ name: 'x'.repeat(128), minor: false, keepPhotos: true, photos: Array(MAX_PHOTOS).fill('A'.repeat(Math.ceil(MAX_PHOTO_BYTES / 3) * 4)) });
    expect(photoArgs.length).toBeLessThan(MAX_ARGS_BYTES);
    expect(MAX_REQUEST_BYTES).toBeGreaterThan(((MAX_ARGS_BYTES * 4) / 3) * (4 / 3));
  });

  it('sends five 3024 px photos scaled down, sealed, under the request cap; the hub enrols five templates', async () => {
    const sizes = photos.map((p) => statSync(p).size);
    // As taken, the photos would not fit: sent unscaled, base64 twice, they are several times the cap.
    expect(sizes.reduce((a, b) => a + b, 0) * (4 / 3) * (4 / 3)).toBeGreaterThan(MAX_REQUEST_BYTES);

    const out: string[] = [];
    expect(await runPair({ config: configFile, json: true }, { stdout: (t) => out.push(t), stderr: () => undefined })).toBe(0);
    const code = (JSON.parse(out[0]!) as { code: string }).code;
    let paired = await app({ kind: 'pair', code, identity: identityFile, label: 'phone' });
    for (let i = 0; paired.code !== 0 && paired.out.includes('no reply') && i < 10; i++) paired = await app({ kind: 'pair', code, identity: identityFile, label: 'phone' });
    expect(paired.code, paired.out).toBe(0);
    for (const action of [
      { kind: 'consent', action: 'accept-policy', version: '2021-10-31' },
      { kind: 'consent', action: 'grant', consent: 'faceRecognition' },
    ] as const) {
      const r = await app(action);
      expect(r.code, r.out).toBe(0);
    }

    // What crosses the broker: the request as published.
    const watcher = await mqtt.connectAsync(url);
    const requests: Buffer[] = [];
    watcher.on('message', (topic, payload) => {
      if (topic === 'camveil/photo-hub/request/faces/enrol') requests.push(payload);
    });
    await watcher.subscribeAsync('camveil/photo-hub/request/faces/enrol', { qos: 1 });
    try {
      const enrolled = await app({ kind: 'faces-enrol', name: 'Five Photos', photos, keepPhotos: true });
      expect(enrolled.code, enrolled.out).toBe(0);
      expect(JSON.parse(enrolled.out)).toMatchObject({ status: 'ok', data: { personId: expect.stringMatching(/^person_/) as string, templates: 5, photosKept: 5 } });
      await waitFor('the watcher to see the request', () => requests.length === 1, 30_000);
    } finally {
      await watcher.endAsync();
    }
    const request = requests[0]!;
    expect(request.length).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
    // Sealed: no JPEG and no name in it, and well under the cap (figures in docs/mqtt-api.md).
    expect(findPlaintext(request, [{ label: 'name', bytes: Buffer.from('Five Photos') }])).toEqual([]);
    console.info(`faces enrol: 5 photos of ${sizes.map((s) => Math.round(s / 1024)).join(', ')} KiB sent as one request of ${Math.round(request.length / 1024)} KiB (cap ${Math.round(MAX_REQUEST_BYTES / 1024)} KiB)`);
  }, 240_000);

  it('refuses a sixth photo before anything is sent, and a file that is not an image', async () => {
    await expect(app({ kind: 'faces-enrol', name: 'Six', photos: [...photos, photos[0]!] })).rejects.toMatchObject({ code: 'CAMVEIL_E_USAGE' });
    const text = path.join(root, 'notes.jpg');
    writeFileSync(text, 'not a photo');
    await expect(app({ kind: 'faces-enrol', name: 'Text', photos: [text] })).rejects.toMatchObject({ code: 'CAMVEIL_E_IMAGE_INVALID', message: expect.stringContaining('notes.jpg') as string });
  });
});
