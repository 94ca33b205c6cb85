import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { expect, it } from 'vitest';
import { runCamveil, startHub, type HubProcess } from '../harness/hub-process.js';
import { startAedes } from '../harness/mosquitto.js';
import { describeWithPeers } from '../harness/peers.js';
import { descendants } from '../harness/proc-scan.js';
import { startRtspServer, type RtspServer } from '../harness/rtsp-server.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const HUB = 'cam-fault-hub';

function eventRecords(dataDir: string): number {
  const db = new Database(path.join(dataDir, 'camveil.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM store_objects WHERE kind = 'event'").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/**
 * `camveil run` with one RTSP camera (GStreamer's server, its own process) that is killed and started again
 * on the same port, then frozen (SIGSTOP, as a hung camera or a stalled network) and thawed. The clear health
 * in the hub's retained state (`camveil/<hub>/state`) goes reconnecting → streaming each time, the hub says
 * why (`CAMVEIL_E_STREAM_LOST` for the freeze), motion events are recorded again after each outage, and no
 * ffmpeg the hub started outlives its connection.
 */
describeWithPeers(['ffmpeg', 'gst-rtsp-server'], 'fault: the camera dies, comes back, freezes and thaws (camveil run)', () => {
  it('health goes reconnecting → streaming, events resume, and no ffmpeg is left behind', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-camera-fault-'));
    const dataDir = path.join(root, 'hub');
    const broker = await startAedes();
    // Played from its start for each connection: motion from 1 s to 3 s of every connection, then stillness.
    const video = motionVideo({ seconds: 40, motionAt: 1, motionUntil: 3, width: 640, height: 360 });
    let server: RtspServer = await startRtspServer({ file: video });
    const recipient = await identityToRecipient(await generateX25519Identity());
    const config = path.join(root, 'camveil.yaml');
    writeFileSync(
      config,
      [
        `hub: { id: ${HUB}, region: DE }`,
        `dataDir: ${dataDir}`,
        `mqtt: { url: "${broker.url}" }`,
        'cameras:',
        `  - { id: door, source: "${server.url}", analysis: { fps: 4, width: 320, height: 180 } }`,
        `household: { recipients: ["${recipient}"] }`,
        'recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 }',
        '',
      ].join('\n'),
    );
    for (const args of [['accept-policy', '2021-10-31'], ['grant', 'localRecording']]) {
      const r = await runCamveil(['consent', ...args, '--config', config]);
      expect(r.code, r.out).toBe(0);
    }
    const health: string[] = [];
    const watcher = await mqtt.connectAsync(broker.url);
    watcher.on('message', (_topic, payload) => {
      try {
        const envelope = JSON.parse(payload.toString()) as { payload: string };
        const state = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as { health?: { cameras?: Record<string, string> } };
        const camera = Object.values(state.health?.cameras ?? {})[0];
        if (camera !== undefined && camera !== health.at(-1)) health.push(camera);
      } catch {
        // not a state
      }
    });
    await watcher.subscribeAsync(`camveil/${HUB}/state`);
    let hub: HubProcess | undefined;
    const ffmpegs = new Set<number>();
    // The ingest ffmpeg (its source comes on a pipe, never in argv): the one writing raw frames for analysis.
    const scan = (h: HubProcess): number[] => {
      const ingest = descendants(h.pid).filter((p) => p.name === 'ffmpeg' && p.argv.includes('rawvideo')).map((p) => p.pid);
      for (const pid of ingest) ffmpegs.add(pid);
      return ingest;
    };
    const codes = (h: HubProcess): string[] => h.lines().filter((l) => l.camera === 'door' && typeof l.code === 'string').map((l) => String(l.code));
    try {
      hub = await startHub(config);
      const h = hub;
      await waitFor('streaming', () => health.at(-1) === 'streaming', 60_000);
      await waitFor('a motion event', () => eventRecords(dataDir) >= 1, 60_000);
      expect(scan(h)).toHaveLength(1);

      // Killed (a camera losing power) and started again where the hub expects it.
      const port = server.port;
      server.kill();
      await server.exited;
      await waitFor('reconnecting after the kill', () => health.at(-1) === 'reconnecting', 60_000);
      server = await startRtspServer({ file: video, port });
      const eventsBefore = eventRecords(dataDir);
      await waitFor('streaming after the restart', () => health.at(-1) === 'streaming', 60_000);
      await waitFor('a motion event after the restart', () => eventRecords(dataDir) > eventsBefore, 60_000);
      expect(scan(h)).toHaveLength(1);

      // Frozen: connections stay open and nothing answers. The hub's stall detection ends the connection.
      const codesBefore = codes(h).length;
      server.pause();
      await waitFor('reconnecting while frozen', () => health.at(-1) === 'reconnecting', 60_000);
      expect(codes(h).slice(codesBefore)).toContain('CAMVEIL_E_STREAM_LOST');
      expect(health).not.toContain('failed');
      server.resume();
      const eventsFrozen = eventRecords(dataDir);
      await waitFor('streaming after the thaw', () => health.at(-1) === 'streaming', 90_000);
      await waitFor('a motion event after the thaw', () => eventRecords(dataDir) > eventsFrozen, 60_000);
      // One ingest ffmpeg, the current one: each earlier connection's has gone.
      const live = scan(h);
      expect(live).toHaveLength(1);
      expect([...ffmpegs].filter((pid) => !live.includes(pid) && descendants(h.pid).some((p) => p.pid === pid))).toEqual([]);
      // (Before the first connection a camera shows as reconnecting too.)
      expect(health.slice(health.indexOf('streaming'))).toEqual(['streaming', 'reconnecting', 'streaming', 'reconnecting', 'streaming']);
      expect(await h.stop()).toBe(0);
      // Nothing the hub started survives it, wherever it was re-parented.
      const alive = [...ffmpegs].filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
      expect(alive).toEqual([]);
      console.info(JSON.stringify({ health, codes: codes(h), ffmpegRuns: ffmpegs.size, events: eventRecords(dataDir) }));
    } finally {
      await hub?.stop();
      await watcher.endAsync();
      await server.stop();
      await broker.stop();
      rmSync(root, { recursive: true, force: true });
    }
  }, 300_000);
});
