import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runAuditVerify } from '../../src/commands/audit.js';
import { runConsent } from '../../src/commands/consent.js';
import { runDataDelete, runDataExport } from '../../src/commands/data.js';
import type { CommandIO } from '../../src/commands/io.js';
import { validateConfig } from '../../src/config/load.js';
import { decryptToBuffer } from '../../src/crypto/age-stream.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { startReceiver, type Receiver } from '../../src/receiver/server.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
}

describeWithPeers(['ffmpeg'], 'data-subject rights: consent from the console, export, deletion in seconds', () => {
  let root: string;
  let configFile: string;
  let identity: string;
  let receiver: Receiver;
  let uploadedIds: string[] = [];

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-rights-'));
    identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    writeFileSync(path.join(root, 'token'), 'rights-token\n', { mode: 0o600 });
    receiver = await startReceiver({ dir: path.join(root, 'cloud'), token: 'rights-token' });
    const raw = {
      hub: { id: 'rights-hub', region: 'US-IL' },
      dataDir: path.join(root, 'hub'),
      cameras: [{ id: 'porch', source: `file:${motionVideo({ seconds: 12, motionAt: 2, motionUntil: 5 })}` }],
      recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 },
      household: { recipients: [recipient] },
      uplink: { enabled: true, endpoints: { us: receiver.url }, tokenFile: path.join(root, 'token') },
    };
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    // Consent is given from the hub's console, before the service starts.
    for (const args of [['accept-policy', '2021-10-31'], ['grant', 'localRecording'], ['grant', 'cloudUpload']] as const) {
      const io = capture();
      const action = args[0] === 'accept-policy' ? { kind: 'accept-policy' as const, version: args[1] } : { kind: args[0], consent: args[1] };
      expect(await runConsent(action, { config: configFile }, io)).toBe(0);
    }
    const gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    expect(gateway.state().mode).toEqual({ mode: 'cloud', reason: 'ok' });
    await waitFor('an event to be uploaded', () => (gateway.state().uplink?.outbox.uploaded ?? 0) >= 3, 40_000);
    await gateway.stop();
    uploadedIds = receiver.received().map((r) => r.objectId);
  }, 90_000);

  afterAll(async () => {
    await receiver?.close();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('exports everything held about the household as one age file only the household can open', async () => {
    const out = path.join(root, 'export.age');
    const io = capture();
    expect(await runDataExport({ config: configFile, out }, io)).toBe(0);
    const sealed = readFileSync(out);
    expect(sealed.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(sealed.includes(Buffer.from('"section"'))).toBe(false);
    const lines = (await decryptToBuffer(identity, sealed)).toString().trim().split('\n').map((l) => JSON.parse(l) as { section: string });
    const sections = new Set(lines.map((l) => l.section));
    expect([...sections].sort()).toEqual(['audit', 'cloud', 'consent', 'event', 'export', 'object']);
    expect(lines.filter((l) => l.section === 'consent')).toHaveLength(3);
    expect(lines.filter((l) => l.section === 'object').length).toBeGreaterThanOrEqual(3);
    // In cloud mode the export says what the cloud holds for this hub: exactly what it received.
    const cloud = lines.filter((l) => l.section === 'cloud') as unknown as Array<{ objectId: string; bytes: number }>;
    expect(cloud.map((c) => c.objectId).sort()).toEqual([...uploadedIds].sort());
    expect(cloud.every((c) => c.bytes > 0)).toBe(true);
  });

  it('deletes every object, event and consent record in seconds, and the cloud deletes what it received', async () => {
    expect(uploadedIds.length).toBeGreaterThanOrEqual(3);
    const io = capture();
    expect(await runDataDelete({ config: configFile, yes: true }, io)).toBe(0);
    expect(io.out.join('\n')).toMatch(/cloud: \d+ deletion request\(s\) confirmed, 0 pending/);
    // The cloud no longer holds any of them; the hub holds no object file.
    expect(receiver.received()).toEqual([]);
    const hubFiles = readdirSync(path.join(root, 'cloud'), { recursive: true }).filter((f) => String(f).endsWith('.age'));
    expect(hubFiles).toEqual([]);
    expect(readdirSync(path.join(root, 'hub', 'objects'))).toEqual([]);
    // Consent is gone: the hub is as new, local-only.
    const show = capture();
    await runConsent({ kind: 'show' }, { config: configFile, json: true }, show);
    const state = JSON.parse(show.out[0]!) as { consent: { cloudUpload: boolean; localRecording: boolean; seq: number }; mode: { mode: string } };
    expect(state.consent).toMatchObject({ cloudUpload: false, localRecording: false, seq: 0 });
    expect(state.mode.mode).toBe('local-only');
  });

  it('keeps an intact audit trail of it all, with no personal data', async () => {
    const io = capture();
    expect(await runAuditVerify({ dataDir: path.join(root, 'hub') }, io)).toBe(0);
    expect(io.out.join('')).toMatch(/audit log intact: \d+ records/);
    const db = readFileSync(path.join(root, 'hub', 'camveil.db'));
    expect(db.includes(Buffer.from('data-subject-request'))).toBe(true);
    expect(db.includes(Buffer.from('rights-token'))).toBe(false);
  });
});
