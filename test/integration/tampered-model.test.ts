import { spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_MANIFEST_PATH, defaultModelDir } from '../../src/analysis/model-files.js';
import { runConsent } from '../../src/commands/consent.js';
import type { CommandIO } from '../../src/commands/io.js';
import { validateConfig } from '../../src/config/load.js';
import type { CamveilEvents } from '../../src/events.js';
import { Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const BIN = fileURLToPath(new URL('../../bin/camveil.js', import.meta.url));

const quiet: CommandIO = { stdout: () => undefined, stderr: () => undefined };

/**
 * One byte appended to a face model: faces are disabled (state and an `incident` say why), the hub keeps
 * running and its camera keeps recording. Before, the face stage's failure was logged as a string, the
 * log serializer threw, and the rejection ended `camveil run` with exit 1.
 */
describeWithPeers(['ffmpeg'], 'a tampered face model disables faces, not the hub', () => {
  let root: string;
  let models: string;
  let raw: Record<string, unknown>;
  let configFile: string;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-tamper-'));
    models = path.join(root, 'models');
    mkdirSync(models);
    const manifest = JSON.parse(readFileSync(DEFAULT_MANIFEST_PATH, 'utf8')) as { nets: { faces: { files: Array<{ name: string }> } } };
    for (const { name } of manifest.nets.faces.files) copyFileSync(path.join(defaultModelDir('faces'), name), path.join(models, name));
    appendFileSync(path.join(models, 'tiny_face_detector_model.bin'), Buffer.from([0]));
    const recipient = await identityToRecipient(await generateX25519Identity());
    raw = {
      hub: { id: 'tamper-hub', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      household: { recipients: [recipient] },
      cameras: [{ id: 'porch', source: `file:${motionVideo({ seconds: 12, motionAt: 2, motionUntil: 5 })}`, faceRecognition: true }],
      recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 },
      // Every frame goes to the face stage at once, motion or not: the models are asked for straight away.
      faceRecognition: { onlyWithMotion: false },
      privacy: { faceCapableOverride: true },
    };
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    for (const action of [
      { kind: 'accept-policy' as const, version: '2021-10-31' },
      { kind: 'grant' as const, consent: 'localRecording' },
      { kind: 'grant' as const, consent: 'faceRecognition' },
    ]) {
      expect(await runConsent(action, { config: configFile }, quiet)).toBe(0);
    }
  }, 60_000);

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('camveil run keeps running and records clips; faces are disabled with CAMVEIL_E_MODEL_INVALID', async () => {
    const child = spawn(process.execPath, [BIN, 'run', '--config', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CAMVEIL_FACE_MODEL_DIR: models },
    });
    let stdout = '';
    let stderr = '';
    let exited: number | null | undefined;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => (exited = code ?? -1));
    const objects = path.join(root, 'hub', 'objects');
    const stored = () => {
      try {
        return readdirSync(objects).filter((f) => f.endsWith('.age')).length;
      } catch {
        return 0;
      }
    };
    try {
      await waitFor('faces disabled in the log', () => exited !== undefined || stdout.includes('faces disabled'), 90_000);
      // A clip and its event record sealed and stored while faces are off.
      await waitFor('a clip stored', () => exited !== undefined || stored() >= 2, 90_000);
      expect(exited, stderr).toBeUndefined();
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number; code?: string; err?: { code?: string; message?: string } });
      const disabled = lines.find((l) => l.msg.startsWith('faces disabled'));
      expect(disabled?.code).toBe('CAMVEIL_E_MODEL_INVALID');
      expect(disabled?.err?.message).toContain('tiny_face_detector_model.bin: size');
      expect(lines.some((l) => l.msg.includes('keeps running'))).toBe(false);
    } finally {
      if (exited === undefined) child.kill('SIGTERM');
      await new Promise((resolve) => (exited === undefined ? child.once('close', resolve) : resolve(undefined)));
    }
    expect(exited).toBe(0);
    expect(stored()).toBeGreaterThanOrEqual(2);
  }, 200_000);

  it('the state says why faces are disabled and an incident goes out once', async () => {
    process.env.CAMVEIL_FACE_MODEL_DIR = models;
    const gateway = new Gateway({ config: validateConfig({ ...raw, dataDir: path.join(root, 'hub2') }, configFile, root), logger: silentLogger() });
    const incidents: Array<CamveilEvents['incident']> = [];
    gateway.bus.on('incident', (e) => incidents.push(e));
    try {
      await gateway.start();
      await gateway.consent.acceptPolicy('2021-10-31', { actor: 'local-operator', requestDigest: 'a'.repeat(64) });
      await gateway.consent.grant('faceRecognition', { actor: 'local-operator', requestDigest: 'b'.repeat(64) });
      await waitFor('faces disabled in the state', () => gateway.state().faces?.disabledReason !== undefined, 90_000);
      expect(gateway.state().faces).toMatchObject({ disabledReason: 'CAMVEIL_E_MODEL_INVALID', loaded: false });
      expect(incidents).toEqual([{ reason: 'model-tampered', detail: expect.any(String) as string }]);
      expect(gateway.state().cameras[0]?.health).not.toBe('failed');
    } finally {
      delete process.env.CAMVEIL_FACE_MODEL_DIR;
      await gateway.stop();
    }
  }, 120_000);
});
