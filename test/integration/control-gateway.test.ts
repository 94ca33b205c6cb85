import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPair } from '../../src/commands/pair.js';
import { AppClient } from '../../src/control/app-client.js';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../harness/mosquitto.js';
import { waitFor } from '../harness/wait.js';

/** The control plane inside the running gateway, with its embedded broker: what the phone app does. */
describe('gateway control plane over MQTT (embedded broker)', () => {
  let root: string;
  let gateway: Gateway;
  let app: AppClient;
  let appMqtt: MqttClient;
  let url: string;
  let configFile: string;
  let recipient: string;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-ctl-'));
    recipient = await identityToRecipient(await generateX25519Identity());
    url = `mqtt://127.0.0.1:${await freePort()}`;
    const raw = {
      hub: { id: 'ctl-hub', region: 'DE' },
      dataDir: path.join(root, 'hub'),
      household: { recipients: [recipient] },
      mqtt: { url, embeddedBroker: true },
    };
    configFile = path.join(root, 'camveil.json');
    writeFileSync(configFile, JSON.stringify(raw));
    gateway = new Gateway({ config: validateConfig(raw, configFile, root), logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    appMqtt = await mqtt.connectAsync(url);
    app = new AppClient({ client: appMqtt, baseTopic: 'camveil', hubId: 'ctl-hub', timeoutMs: 5000 });
    await app.start();
  });

  afterAll(async () => {
    await app?.stop();
    await appMqtt?.endAsync();
    await gateway?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('a fresh subscriber sees the retained availability and state, with the mode and no secrets', async () => {
    const seen = new Map<string, string>();
    const probe = await mqtt.connectAsync(url);
    probe.on('message', (topic, payload) => seen.set(topic, payload.toString()));
    await probe.subscribeAsync('camveil/ctl-hub/#');
    await waitFor('retained availability and state', () => seen.has('camveil/ctl-hub/availability') && seen.has('camveil/ctl-hub/state'), 5000);
    await probe.endAsync();
    expect(seen.get('camveil/ctl-hub/availability')).toBe('online');
    const state = JSON.parse(seen.get('camveil/ctl-hub/state')!) as { mode: { mode: string } };
    expect(state.mode.mode).toBe('local-only');
    expect(seen.get('camveil/ctl-hub/state')).not.toMatch(/AGE-SECRET-KEY|password/);
  });

  it('pairs with the code `camveil pair` shows', async () => {
    const out: string[] = [];
    expect(await runPair({ config: configFile, json: true }, { stdout: (t) => out.push(t), stderr: () => undefined })).toBe(0);
    const { code } = JSON.parse(out[0]!) as { code: string };
    expect((await app.pair('WRONGCOD', recipient)).status).toBe('error');
    const paired = await app.pair(code, recipient, 'test phone');
    expect(paired.status).toBe('ok');
  });

  it('refuses an unsigned grant (what a broker operator could send) and changes nothing', async () => {
    const r = await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: false });
    expect(r).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_NOT_AUTHORISED' } });
    expect(gateway.state().mode.mode).toBe('local-only');
  });

  it('accepts signed grants from the paired app, and the hub leaves local-only mode', async () => {
    expect((await app.request('consent/set', { action: 'accept-policy', version: '2021-10-31' }, { sign: true })).status).toBe('ok');
    expect((await app.request('consent/set', { action: 'grant', consent: 'localRecording' }, { sign: true })).status).toBe('ok');
    const r = await app.request('consent/set', { action: 'grant', consent: 'cloudUpload' }, { sign: true });
    expect(r).toMatchObject({ status: 'ok', data: { mode: { mode: 'cloud', reason: 'ok' } } });
    expect(gateway.state().mode).toEqual({ mode: 'cloud', reason: 'ok' });
  });

  it('refuses the same signed bytes replayed', async () => {
    const prepared = app.prepare('consent/set', { action: 'grant', consent: 'localRecording' }, { sign: true });
    expect((await app.send(prepared.command, prepared.bytes, prepared.transaction)).status).toBe('ok');
    const again = await app.send(prepared.command, prepared.bytes, prepared.transaction);
    expect(again).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REPLAY' } });
  });

  it('accepts an unsigned withdrawal: anyone may narrow what flows, and the hub is local-only at once', async () => {
    const r = await app.request('consent/set', { action: 'withdraw', consent: 'cloudUpload' }, { sign: false });
    expect(r).toMatchObject({ status: 'ok', data: { mode: { mode: 'local-only', reason: 'cloud-upload-withdrawn' } } });
    expect(gateway.state().mode.mode).toBe('local-only');
  });
});
