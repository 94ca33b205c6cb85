import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AppClient } from '../../src/control/app-client.js';
import { startReceiver, type Receiver } from '../../src/receiver/server.js';
import { startFaultyCloud, type Fault, type FaultyCloud } from '../harness/faulty-cloud.js';
import { runCamveil, startHub, SteppedClock, type HubProcess } from '../harness/hub-process.js';
import { startAedes, type TestBroker } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const TOKEN = 'clock-jump-upload-token-0123456789';
const HUB = 'clock-hub';
const HOUR_S = 3600;

function rows<T>(dataDir: string, sql: string): T[] {
  const db = new Database(path.join(dataDir, 'camveil.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

/**
 * `camveil run` on a wall clock the test steps an hour back and then forward again (libfaketime; the
 * monotonic clock runs on, as when NTP or a person sets the time). The rule under test (src/clock.ts, the
 * docs/reliability.md, "Clocks"): intervals run on elapsed time, so no upload waits out the step; records and the signed
 * request window are wall time, so an app with the right clock is refused while the hub's is an hour off and
 * answered again once it is right; consent is an ordered ledger, so no step re-orders it; retention ages by
 * wall time, and an hour deletes nothing a day's retention keeps.
 */
describeWithPeers(['ffmpeg', 'faketime'], 'fault: the hub clock steps an hour back and forward', () => {
  let root: string;
  let dataDir: string;
  let config: string;
  let clock: SteppedClock;
  let receiver: Receiver;
  let cloud: FaultyCloud;
  let broker: TestBroker;
  let hub: HubProcess | undefined;
  let fault: Fault = { kind: 'pass' };

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-clock-'));
    dataDir = path.join(root, 'hub');
    clock = new SteppedClock(path.join(root, 'faketime'));
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    receiver = await startReceiver({ dir: path.join(root, 'cloud'), token: TOKEN });
    cloud = await startFaultyCloud({ upstream: receiver.url, plan: () => fault });
    broker = await startAedes();
    const tokenFile = path.join(root, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    // Motion for 2 s of every 6: a clip, a snapshot and an event record every 6 s.
    const video = motionVideo({ seconds: 6, motionAt: 1, motionUntil: 3, width: 640, height: 360 });
    config = path.join(root, 'camveil.yaml');
    writeFileSync(
      config,
      [
        `hub: { id: ${HUB}, region: DE }`,
        `dataDir: ${dataDir}`,
        `mqtt: { url: "${broker.url}" }`,
        'cameras:',
        `  - { id: door, source: "file:${video}", analysis: { fps: 4, width: 320, height: 180 } }`,
        `household: { recipients: ["${recipient}"] }`,
        'recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 }',
        // A day's retention: the tightest the config allows, so an hour's step is as close to it as it gets.
        'storage: { retentionDays: 1 }',
        `uplink: { enabled: true, endpoints: { eu: "${cloud.url}" }, tokenFile: "${tokenFile}", timeoutSeconds: 30 }`,
        '',
      ].join('\n'),
    );
    const steps = [['accept-policy', '2021-10-31'], ['grant', 'localRecording'], ['grant', 'cloudUpload'], ['grant', 'crossBorderTransfer'], ['withdraw', 'crossBorderTransfer']];
    for (const args of steps) {
      const r = await runCamveil(['consent', ...args, '--config', config]);
      expect(r.code, r.out).toBe(0);
    }
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
    await cloud?.close();
    await receiver?.close();
    await broker?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('uploads flow through both steps, consent holds, retention deletes nothing, and the signed window follows the hub clock', async () => {
    hub = await startHub(config, { env: clock.env() });
    const h = hub;
    const client = await mqtt.connectAsync(broker.url);
    // The phone's own identity: the hub seals its replies to the paired phones (and the household).
    const phone = await generateX25519Identity();
    const app = new AppClient({ client, baseTopic: 'camveil', hubId: HUB, timeoutMs: 10_000, identity: phone });
    await app.start();
    try {
      const pairing = await runCamveil(['pair', '--json', '--config', config]);
      expect(pairing.code, pairing.out).toBe(0);
      const { code } = JSON.parse(pairing.out.trim().split('\n').at(-1)!) as { code: string };
      expect((await app.pair(code, await identityToRecipient(phone), 'phone')).status).toBe('ok');

      const stored = new Set<string>();
      const look = (): { stored: string[]; arrived: Set<string> } => {
        const now = rows<{ object_id: string }>(dataDir, 'SELECT object_id FROM store_objects').map((r) => r.object_id);
        for (const id of now) stored.add(id);
        return { stored: now, arrived: new Set(receiver.received().map((r) => r.objectId)) };
      };
      /** `n` more objects stored after this call, and every object stored so far in the cloud. */
      const flowing = async (what: string, n: number): Promise<void> => {
        const before = look().stored.length;
        await waitFor(what, () => {
          const { stored: now, arrived } = look();
          return now.length >= before + n && now.every((id) => arrived.has(id));
        }, 90_000);
      };
      const consent = async (): Promise<unknown> => {
        const reply = await app.request('consent/get', {}, { sign: true });
        expect(reply.status, JSON.stringify(reply)).toBe('ok');
        return reply.data;
      };

      await flowing('uploads before any step', 2);
      const granted = await consent();
      expect(granted).toMatchObject({ consent: { localRecording: true, cloudUpload: true, crossBorderTransfer: false } });

      // The cloud asks for a 20 s pause; once the hub has been told, its clock goes back an hour. The pause
      // ends 20 s later on elapsed time, not an hour and 20 s later on the new wall clock.
      fault = { kind: 'status', status: 429, headers: { 'retry-after': '20' } };
      await waitFor('a 429 to reach the hub', () => cloud.requests().some((r) => r.fault === 'status' && r.answeredAt !== undefined), 60_000);
      clock.set(-HOUR_S);
      fault = { kind: 'pass' };

      // An app with the right clock is an hour off the hub's: its signed request is refused as stale, and the
      // hub's refusal (dated by the hub's clock) is itself stale to the app. Nothing is answered "ok".
      const refused = await app.request('consent/get', {}, { sign: true }).then(
        (r) => ({ code: 'answered', message: JSON.stringify(r) }),
        (e: unknown) => ({ code: (e as { code?: string }).code, message: String(e) }),
      );
      expect(refused).toMatchObject({ code: 'CAMVEIL_E_HUB_UNVERIFIED', message: expect.stringMatching(/stale/) as unknown });

      await flowing('uploads after the step back', 2);

      clock.set(0);
      await flowing('uploads after the step forward', 2);

      // Right again: the app is answered, and consent is what it was before either step.
      expect(await consent()).toMatchObject({ consent: { localRecording: true, cloudUpload: true, crossBorderTransfer: false } });
      // Retention deleted nothing: every object ever seen is still held.
      const held = new Set(look().stored);
      expect([...stored].filter((id) => !held.has(id))).toEqual([]);
      expect(h.log()).not.toContain('retention deleted');
      // The hub saw both steps (src/clock.ts) and moved its upload schedule with each.
      expect(h.lines().filter((l) => l.msg === 'the wall clock stepped; upload schedule moved with it').map((l) => Math.round(Number(l.stepMs) / 60_000))).toEqual([-60, 60]);
      // Every object is in the cloud once.
      const ids = receiver.received().map((r) => r.objectId);
      expect([...stored].filter((id) => !ids.includes(id))).toEqual([]);
      console.info(JSON.stringify({ objects: stored.size, uploads: ids.length, cloudRequests: cloud.requests().length, refused }));
    } finally {
      await app.stop();
      await client.endAsync();
    }
    expect(await h.stop()).toBe(0);
    const verify = await runCamveil(['audit', 'verify', '--data-dir', dataDir]);
    expect(verify.code, verify.out).toBe(0);
  }, 300_000);
});
