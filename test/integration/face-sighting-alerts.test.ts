import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { newSightingId } from '../../src/analysis/faces/sightings.js';
import { openHubContext } from '../../src/commands/hub-context.js';
import { validateConfig } from '../../src/config/load.js';
import { AppClient } from '../../src/control/app-client.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../harness/mosquitto.js';
import { waitFor } from '../harness/wait.js';

/**
 * The running gateway: its sealed face alerts carry the sighting and event ids (what the app answers
 * with faces/correct), sightings past retention are deleted at start, and a faceRecognition withdrawal
 * deletes every sighting.
 */
describe('gateway: face alerts with sighting ids, sighting retention and withdrawal', () => {
  it('alerts carry sighting and event; old sightings go at start; a withdrawal empties the table', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-sight-gw-'));
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const raw = {
      hub: { id: 'sight-hub', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      household: { recipients: [recipient] },
      mqtt: { url, embeddedBroker: true },
      // Disabled: no ffmpeg; but switched on for faces and vouched capable, so the gate may allow face alerts.
      cameras: [{ id: 'porch', enabled: false, source: 'rtsp://192.0.2.10/videoMain', faceRecognition: true }],
      privacy: { faceCapableOverride: true },
      faceRecognition: { sightingRetentionDays: 3 },
    };
    const configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));

    // Consents, and two sightings recorded before the hub starts: one 5 days old, one fresh.
    const ctx = await openHubContext(configFile);
    const actor = { actor: 'local-operator', requestDigest: 'a'.repeat(64) };
    await ctx.consent.acceptPolicy('2021-10-31', actor);
    await ctx.consent.grant('faceRecognition', actor);
    const descriptor = new Float32Array(128).fill(0.05);
    const fresh = newSightingId();
    await ctx.people.sightings.record({ sightingId: newSightingId(), cameraId: 'porch', at: Date.now() - 5 * 86_400_000, label: 'unknown', descriptor });
    await ctx.people.sightings.record({ sightingId: fresh, cameraId: 'porch', at: Date.now(), label: 'unknown', descriptor });

    const gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    const appMqtt = await mqtt.connectAsync(url);
    // An app that paired with this hub holds its signing key and recipient (MQTT API v2).
    const keys = await loadOrCreateHubKeys(path.join(root, 'hub'));
    const pinned = { hubId: 'sight-hub', baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient };
    const app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: 'sight-hub', timeoutMs: 5000, pinned });
    try {
      expect((await gateway.enrolment.sightings.list()).map((s) => s.sightingId)).toEqual([fresh]);

      const events: unknown[] = [];
      const unfollow = await app.followEvents(identity, (e) => events.push(e));
      await waitFor('the control plane to be up', () => gateway.state().mqtt !== undefined, 5000);
      const sightingId = newSightingId();
      // The face stage emits this (tested in face-corrections.test.ts); here the gateway's answer to it.
      const emit = () => gateway.bus.emit('face.unknown', { cameraId: 'porch', at: Date.now(), sightingId, eventId: 'evt-42' });
      await waitFor(
        'a sealed unknown-face alert',
        () => {
          emit();
          return events.length > 0;
        },
        5000,
      );
      expect(events[0]).toMatchObject({ type: 'unknown-face', sighting: sightingId, event: 'evt-42', camera: expect.stringMatching(/^cam_/) as string });
      await unfollow();

      // A withdrawal, made by the CLI while the hub runs: every sighting goes.
      await ctx.consent.withdraw('faceRecognition', actor);
      await waitFor('sightings deleted after the withdrawal', () => gateway.enrolment.sightings.count() === 0, 5000);
    } finally {
      await app.stop();
      await appMqtt.endAsync();
      await gateway.stop();
      ctx.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
