import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { expect, it } from 'vitest';
import { AppClient } from '../../src/control/app-client.js';
import { runCamveil, startHub, type HubProcess } from '../harness/hub-process.js';
import { startMosquitto, type TestBroker } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const HUB = 'fault-hub';

/** The retained messages a fresh subscriber is handed on `topics`. */
async function retained(url: string, topics: string[]): Promise<Map<string, Buffer>> {
  const seen = new Map<string, Buffer>();
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  client.on('message', (topic, payload) => seen.set(topic, payload));
  await client.subscribeAsync(topics);
  await new Promise((r) => setTimeout(r, 500));
  await client.endAsync();
  return seen;
}

function count(dataDir: string, sql: string): number {
  const db = new Database(path.join(dataDir, 'camveil.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** The `ts` (hub wall clock, ms) of every signed reply the hub sends while `client` listens. */
function replyTimes(client: MqttClient): number[] {
  const times: number[] = [];
  client.on('message', (topic, payload) => {
    if (!topic.includes('/response/')) return;
    try {
      const envelope = JSON.parse(payload.toString()) as { payload: string };
      const body = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as { kind?: string; ts?: number };
      if (body.kind === 'response' && typeof body.ts === 'number') times.push(body.ts);
    } catch {
      // not a hub reply
    }
  });
  return times;
}

async function appOn(url: string): Promise<{ client: MqttClient; app: AppClient; replies: number[] }> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 500 });
  const replies = replyTimes(client);
  // The app's state file is shared between connections, so every client signs with the paired key.
  const app = new AppClient({ client, baseTopic: 'camveil', hubId: HUB, timeoutMs: 2_000, stateFile: appState, identity: appIdentity });
  await app.start();
  return { client, app, replies };
}

let appState = '';
/** The household identity, which the phone also holds: the hub seals its replies to it. */
let appIdentity = '';

/**
 * `camveil run` against Debian's mosquitto, without persistence, killed and started again on the same port:
 * the broker comes back empty, and the hub must put its availability and state back at once (not at its next
 * 10 s tick) and answer the app; a request sent while the broker was down and delivered again is executed
 * once; and a hub whose broker is gone must still stop, storing the clip it was recording.
 */
describeWithPeers(['mosquitto', 'ffmpeg'], 'fault: the broker dies and comes back (camveil run)', () => {
  it('the hub reconnects, re-publishes availability and state, answers a signed command soon, runs a repeated request once, and stops with the broker down', async () => {
    let broker: TestBroker = await startMosquitto();
    const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-broker-fault-'));
    const dataDir = path.join(root, 'hub');
    appState = path.join(root, 'app-state.json');
    appIdentity = await generateX25519Identity();
    const recipient = await identityToRecipient(appIdentity);
    // Motion all the time and clips up to 2 min: a clip is open whenever the hub is told to stop.
    const video = motionVideo({ seconds: 6, motionAt: 0, motionUntil: 6, width: 640, height: 360 });
    const config = path.join(root, 'camveil.yaml');
    writeFileSync(
      config,
      [
        `hub: { id: ${HUB}, region: DE }`,
        `dataDir: ${dataDir}`,
        `mqtt: { url: "${broker.url}" }`,
        'cameras:',
        `  - { id: door, source: "file:${video}", analysis: { fps: 4, width: 320, height: 180 } }`,
        `household: { recipients: ["${recipient}"] }`,
        'recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 120 }',
        '',
      ].join('\n'),
    );
    for (const args of [['accept-policy', '2021-10-31'], ['grant', 'localRecording']]) {
      const r = await runCamveil(['consent', ...args, '--config', config]);
      expect(r.code, r.out).toBe(0);
    }
    const state = `camveil/${HUB}/state`;
    const availability = `camveil/${HUB}/availability`;
    let hub: HubProcess | undefined;
    try {
      hub = await startHub(config);
      const h = hub;
      let before = new Map<string, Buffer>();
      for (let i = 0; i < 60 && !(before.has(state) && before.get(availability)?.toString() === 'online'); i++) before = await retained(broker.url, [state, availability]);
      expect(before.get(availability)?.toString()).toBe('online');
      expect(before.has(state)).toBe(true);

      // Pair an app, and have it sign a grant it will send while the broker is down.
      const pairing = await runCamveil(['pair', '--json', '--config', config]);
      expect(pairing.code, pairing.out).toBe(0);
      const { code } = JSON.parse(pairing.out.trim().split('\n').at(-1)!) as { code: string };
      let side = await appOn(broker.url);
      expect((await side.app.pair(code, recipient, 'phone')).status).toBe('ok');
      const ledger = "SELECT count(*) AS n FROM policy_consent_ledger WHERE consent = 'crossBorderTransfer'";
      const grantsBefore = count(dataDir, ledger);
      const grant = await side.app.prepare('consent/set', { action: 'grant', consent: 'crossBorderTransfer' }, { sign: true });

      const port = broker.port;
      await broker.stop();
      // Sent while the broker is down: the client queues it and delivers it on its return, if the hub is
      // subscribed by then (a broker without persistence drops it otherwise).
      // Published raw, as any app would, without waiting for the reply that cannot come yet.
      const whileDown = new Promise<void>((resolve) => side.client.publish(`camveil/${HUB}/request/consent/set`, grant.bytes, { qos: 1 }, () => resolve()));
      await new Promise((r) => setTimeout(r, 1_500));
      broker = await startMosquitto({ port });
      const ready = Date.now();
      // Nothing retained survived the restart; the hub must bring it back by itself (its tick is 10 s).
      let after = new Map<string, Buffer>();
      for (let i = 0; i < 60 && !(after.has(state) && after.get(availability)?.toString() === 'online'); i++) after = await retained(broker.url, [state, availability]);
      expect(after.get(availability)?.toString()).toBe('online');
      expect(after.has(state)).toBe(true);

      // A signed command is answered soon after the broker's return: the hub's reply carries its own time
      // of signing, so the app's reconnect and the test's polling do not count (both clocks are this machine's).
      await side.app.stop();
      await side.client.endAsync(true);
      side = await appOn(broker.url);
      let answered = false;
      for (let i = 0; i < 30 && !answered; i++) {
        const reply = await side.app.request('consent/get', {}, { sign: true }).catch(() => undefined);
        answered = reply?.status === 'ok';
      }
      expect(answered).toBe(true);
      const firstAnswerMs = Math.min(...side.replies) - ready;
      // The hub redials every 2 s; 5 s is the promise (issue 10), measured from the broker listening again.
      expect(firstAnswerMs).toBeLessThan(5_000);

      // The same signed request again (a broker re-delivering it, or the app retrying): executed once at most.
      await Promise.race([whileDown, new Promise((r) => setTimeout(r, 5_000))]);
      const again = await side.app.send('consent/set', grant.bytes, grant.transaction).catch((e: unknown) => e);
      const grantsAfter = count(dataDir, ledger);
      expect(grantsAfter - grantsBefore).toBeLessThanOrEqual(1);
      // And if the first copy was lost with the broker, the second ran: once either way.
      expect(grantsAfter - grantsBefore).toBe(1);
      await side.app.stop();
      await side.client.endAsync(true);

      // Broker gone for good, a clip open: SIGTERM stops the hub within 10 s (each MQTT step gets 2 s) and the
      // clip it was recording is stored.
      await waitFor('motion', () => h.log().includes('motion started'), 60_000);
      const clipsBefore = count(dataDir, "SELECT count(*) AS n FROM store_objects WHERE kind = 'clip'");
      await broker.stop();
      await new Promise((r) => setTimeout(r, 500));
      const stopAt = performance.now();
      const exit = await h.stop(30_000);
      const stopMs = performance.now() - stopAt;
      expect(exit).toBe(0);
      expect(stopMs).toBeLessThan(10_000);
      expect(count(dataDir, "SELECT count(*) AS n FROM store_objects WHERE kind = 'clip'")).toBeGreaterThan(clipsBefore);
      console.info(JSON.stringify({ firstAnswerMs, stopMs: Math.round(stopMs), again: again instanceof Error ? again.message : again, grants: grantsAfter - grantsBefore }));
    } finally {
      await hub?.stop();
      await broker.stop();
      rmSync(root, { recursive: true, force: true });
    }
  }, 240_000);
});
