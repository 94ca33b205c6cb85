import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { z } from 'zod';
import { AuditLog } from '../src/audit/audit-log.js';
import { AppClient } from '../src/control/app-client.js';
import { defineHandler } from '../src/control/command.js';
import { ControlPlane } from '../src/control/dispatcher.js';
import { openSealedArgs } from '../src/control/envelope.js';
import { startEmbeddedBroker } from '../src/control/embedded-broker.js';
import { KeyRegistry } from '../src/control/key-registry.js';
import { Pairing } from '../src/control/pairing.js';
import { openReply, sealReply } from '../src/control/sealed-reply.js';
import { connectOptions } from '../src/control/topics.js';
import { loadOrCreateHubKeys } from '../src/crypto/hub-keys.js';
import { silentLogger } from '../src/log.js';
import { openDatabase } from '../src/store/database.js';

/**
 * `npm run bench -- control`: the cost of MQTT API version 2 against an embedded broker (aedes) in one
 * process. Pairing (scrypt on both sides, the hub's proof, pinning); a signed request's round trip (the app
 * seals the args to the pinned hub recipient and signs, the hub verifies, opens the args and signs its reply,
 * the app verifies) over CAMVEIL_BENCH_REQUESTS requests (default 1,000), beside the same signed round trip
 * with empty args (nothing to seal or open: what sealing adds) and the baseline of a bare MQTT publish round
 * trip through the same broker (an echo client republishing the same bytes), interleaved so the machine's
 * load falls on all three alike; sealing (the app's prepare) and opening (the hub's openSealedArgs) alone; sealing a reply's result (the hub) and opening it (the app) alone; the byte sizes of a signed state, of padded sealed events, and of requests
 * with their args sealed against the same args in clear.
 */
function percentiles(samples: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => Number(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(3));
  return { p50: at(0.5), p99: at(0.99), max: Number(sorted.at(-1)!.toFixed(3)) };
}

export async function benchControl(): Promise<unknown> {
  const requests = Number(process.env.CAMVEIL_BENCH_REQUESTS ?? 1000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-bench-control-'));
  const broker = await startEmbeddedBroker();
  const db = openDatabase(dir);
  const clients: mqtt.MqttClient[] = [];
  try {
    const keys = await loadOrCreateHubKeys(dir);
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const registry = new KeyRegistry(db);
    const hubMqtt = await mqtt.connectAsync(broker.url, connectOptions('camveil', 'bench'));
    clients.push(hubMqtt);
    const cameras = Array.from({ length: 4 }, (_, i) => ({ cameraId: `camera-${i}`, health: 'streaming', motion: { enabled: true, active: false, events: 12 }, clips: 40, framesIn: 123456 }));
    const plane = new ControlPlane({
      client: hubMqtt,
      baseTopic: 'camveil',
      hubId: 'bench',
      registry,
      audit: new AuditLog(db),
      logger: silentLogger(),
      hub: keys,
      recipients: () => [recipient],
      getState: () => ({ hub: 'hub_x', mode: { mode: 'cloud', reason: 'ok' }, policyVersion: '2021-10-31', cameras }),
      getHealth: () => Object.fromEntries(cameras.map((c, i) => [`cam_${'a'.repeat(15)}${i}`, 'streaming' as const])),
      handlers: {
        'bench/echo': defineHandler({ requires: 'signature', args: z.strictObject({ n: z.number() }), run: (a) => ({ n: a.n }) }),
        'bench/noop': defineHandler({ requires: 'signature', args: z.strictObject({}), run: () => ({ n: 0 }) }),
      },
    });
    await plane.start();

    // Pairing: five apps, each with a fresh code.
    const pairing = new Pairing(db);
    const pairMs: number[] = [];
    let app: AppClient | undefined;
    for (let i = 0; i < 5; i++) {
      const client = await mqtt.connectAsync(broker.url);
      clients.push(client);
      app = new AppClient({ client, baseTopic: 'camveil', hubId: 'bench', timeoutMs: 30_000, identity });
      const { code } = pairing.createPairingCode(Date.now());
      const t0 = performance.now();
      const r = await app.pair(code, recipient);
      pairMs.push(performance.now() - t0);
      if (r.status !== 'ok') throw new Error('pairing failed');
    }

    // Signed round trips, sealed args and empty args, and the bare MQTT baseline (the same sized message
    // through the broker and back, no control plane at all), taken in turn.
    const echo = await mqtt.connectAsync(broker.url);
    const asker = await mqtt.connectAsync(broker.url);
    clients.push(echo, asker);
    echo.on('message', (_t, payload) => void echo.publishAsync('bench/raw/out', payload, { qos: 1 }));
    await echo.subscribeAsync('bench/raw/in', { qos: 1 });
    await asker.subscribeAsync('bench/raw/out', { qos: 1 });
    const sample = (await app!.prepare('bench/echo', { n: 1 }, { sign: true })).bytes;
    const signedMs: number[] = [];
    const unsealedMs: number[] = [];
    const rawMs: number[] = [];
    const timed = async (into: number[] | undefined, run: () => Promise<unknown>): Promise<void> => {
      const t0 = performance.now();
      const r = await run();
      into?.push(performance.now() - t0);
      if (r !== null && typeof r === 'object' && 'status' in r && r.status !== 'ok') throw new Error(`request failed: ${JSON.stringify(r)}`);
    };
    const raw = async (): Promise<undefined> => {
      const back = new Promise<void>((resolve) => asker.once('message', () => resolve()));
      await asker.publishAsync('bench/raw/in', sample, { qos: 1 });
      await back;
      return undefined;
    };
    for (let i = 0; i < requests + 20; i++) {
      const keep = i >= 20;
      await timed(keep ? signedMs : undefined, () => app!.request('bench/echo', { n: i }, { sign: true }));
      await timed(keep ? unsealedMs : undefined, () => app!.request('bench/noop', {}, { sign: true }));
      await timed(keep ? rawMs : undefined, raw);
    }
    // Sealing alone (no broker): what prepare costs with args to seal and without.
    const prepareMs = { sealed: [] as number[], empty: [] as number[] };
    for (let i = 0; i < requests; i++) {
      await timed(prepareMs.sealed, () => app!.prepare('bench/echo', { n: i }, { sign: true }));
      await timed(prepareMs.empty, () => app!.prepare('bench/noop', {}, { sign: true }));
    }

    // Opening alone (the hub's side, no broker).
    const openMs: number[] = [];
    const sealedSample = JSON.parse(Buffer.from((JSON.parse(sample.toString()) as { payload: string }).payload, 'base64').toString()) as { sealedArgs: string };
    for (let i = 0; i < requests; i++) await timed(openMs, () => openSealedArgs(Buffer.from(sealedSample.sealedArgs, 'base64'), keys.identity));

    // Replies: sealing a result (the hub's reply path) and opening it (the app), alone; and the reply sizes.
    const replySealMs: number[] = [];
    const replyOpenMs: number[] = [];
    const reply = { status: 'ok' as const, transaction: 't', data: { cameras: cameras.map((c) => ({ id: c.cameraId, name: 'Garage door', health: 'streaming' })) } };
    let wire = await sealReply('cameras/list', reply, [recipient]);
    for (let i = 0; i < requests; i++) {
      await timed(replySealMs, async () => (wire = await sealReply('cameras/list', reply, [recipient])));
      await timed(replyOpenMs, () => openReply('cameras/list', wire, [identity]));
    }
    const replyBytes = {
      cameraList4: JSON.stringify(wire).length,
      error: JSON.stringify(await sealReply('x', { data: {}, status: 'error', error: { code: 'CAMVEIL_E_REQUEST_INVALID', message: 'args: cameras.0.id: Invalid input' } }, [recipient])).length,
    };

    // Request sizes: args sealed (as sent) against the same args in clear (as before sealing).
    const requestBytes: Record<string, { sealed: number; clear: number }> = {};
    const camera = { camera: { id: 'garage', name: 'Garage door', source: 'rtsp://192.168.1.30:88/videoMain', credentials: { username: 'admin' } }, sealedPassword: 'x'.repeat(260) };
    for (const [what, command, args] of [
      ['consentGrant', 'consent/set', { action: 'grant', consent: 'cloudUpload' }],
      ['camerasAdd', 'cameras/add', camera],
      ['configSet', 'config/set', { cameras: { garage: { analysisFps: 2, motion: { sensitivity: 0.6 } } } }],
    ] as const) {
      const sealed = (await app!.prepare(command, args, { sign: true })).bytes;
      const envelope = JSON.parse(sealed.toString()) as { payload: string };
      const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as Record<string, unknown>;
      delete payload.sealedArgs;
      const clear = Buffer.from(JSON.stringify({ ...envelope, payload: Buffer.from(JSON.stringify({ ...payload, args })).toString('base64') }));
      requestBytes[what] = { sealed: sealed.length, clear: clear.length };
    }

    // Sizes on the wire.
    const seen: Record<string, number> = {};
    const watcher = await mqtt.connectAsync(broker.url);
    clients.push(watcher);
    let last = 0;
    let topic = '';
    watcher.on('message', (t, payload) => {
      if (t === topic) last = payload.length;
    });
    await watcher.subscribeAsync('camveil/bench/#', { qos: 1 });
    await new Promise((r) => setTimeout(r, 500)); // retained messages first
    const sizeOf = async (what: string, publish: () => Promise<unknown>): Promise<void> => {
      last = 0;
      topic = what.startsWith('state') ? 'camveil/bench/state' : 'camveil/bench/event';
      await publish();
      const deadline = Date.now() + 5000;
      while (last === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      seen[what] = last;
    };
    await sizeOf('stateSigned4Cameras', () => plane.publishState());
    await sizeOf('eventMotion', () => plane.publishEvent({ type: 'motion', at: Date.now(), camera: 'cam_aaaaaaaaaaaaaaaa' }));
    await sizeOf('eventKnownFace', () =>
      plane.publishEvent({ type: 'known-face', at: Date.now(), camera: 'cam_aaaaaaaaaaaaaaaa', person: 'person_0123456789abcdef', sighting: 'sgt_0123456789abcdef01234567', event: 'evt_0123456789abcdef' }),
    );
    await sizeOf('eventCover', () => plane.publishEvent({ type: 'cover', at: Date.now() }));
    await sizeOf('eventSecurity', () => plane.publishEvent({ type: 'security', reason: 'bad-signatures', detail: 'count=12', at: Date.now() }));
    await plane.stop();
    return {
      pairingMs: percentiles(pairMs),
      requests,
      signedRoundTripMs: percentiles(signedMs),
      signedEmptyArgsRoundTripMs: percentiles(unsealedMs),
      rawMqttRoundTripMs: percentiles(rawMs),
      addedMsP50: Number((percentiles(signedMs).p50 - percentiles(rawMs).p50).toFixed(3)),
      sealingAddedMsP50: Number((percentiles(signedMs).p50 - percentiles(unsealedMs).p50).toFixed(3)),
      prepareMs: { sealedArgs: percentiles(prepareMs.sealed), emptyArgs: percentiles(prepareMs.empty) },
      openSealedArgsMs: percentiles(openMs),
      sealReplyMs: percentiles(replySealMs),
      openReplyMs: percentiles(replyOpenMs),
      replyJsonBytes: replyBytes,
      requestBytes,
      bytesOnTheWire: seen,
    };
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    db.close();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
