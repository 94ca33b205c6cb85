import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path, { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runApp, type AppAction, type AppOptions } from '../../src/commands/app.js';
import { validateConfig } from '../../src/config/load.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/control/embedded-broker.js';
import { Pairing } from '../../src/control/pairing.js';
import { loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { camveilCli } from '../harness/hub-process.js';

const HUB = 'devices-hub';

const camveil = (args: string[]) => camveilCli(args, 90_000);

/**
 * A second phone, added by the first with `devices/add` instead of the pairing code, gets the hub's signing key
 * and recipient from the first phone's pinned state (`camveil app devices add --out`) and starts with them
 * (`--pin-from`): its requests are sealed to the pinned recipient and the hub's signed replies check. Without
 * the bundle it has nothing to check replies against; a bundle with other keys (or for another hub) is refused.
 * A real gateway and aedes broker; the CLI steps through the real `camveil` binary.
 */
describe('camveil app devices add: the new device pins the hub keys the first one pinned at pairing', () => {
  let root: string;
  let broker: EmbeddedBroker;
  let gateway: Gateway;
  let phone1: AppOptions;
  let identity2: string;
  let recipient2: string;

  const app = async (action: AppAction, opts: AppOptions): Promise<{ code: number; out: string }> => {
    const out: string[] = [];
    const code = await runApp(action, opts, { stdout: (t) => out.push(t), stderr: (t) => out.push(t) });
    return { code, out: out.join('\n') };
  };
  const globals = (opts: AppOptions): string[] => ['--broker', opts.broker, '--hub', opts.hub, '--state', opts.state];

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'camveil-devices-add-'));
    broker = await startEmbeddedBroker();
    const household = await generateX25519Identity();
    const householdFile = join(root, 'household.key');
    writeFileSync(householdFile, `${household}\n`, { mode: 0o600 });
    const config = validateConfig({ hub: { id: HUB, region: 'DE' }, dataDir: join(root, 'hub'), household: { recipients: [await identityToRecipient(household)] }, mqtt: { url: broker.url } }, 'test', root);
    gateway = new Gateway({ config, logger: createLogger({ level: 'silent' }) });
    await gateway.start();
    const db = openDatabase(config.dataDir);
    let code: string;
    try {
      code = new Pairing(db).createPairingCode(Date.now()).code;
    } finally {
      db.close();
    }
    phone1 = { broker: broker.url, hub: HUB, state: join(root, 'phone1.json') };
    // The first phone pairs with the code (retried while the hub's control plane comes up).
    let paired = await app({ kind: 'pair', code, identity: householdFile, label: 'first phone' }, phone1);
    for (let i = 0; paired.code !== 0 && paired.out.includes('no reply') && i < 10; i++) paired = await app({ kind: 'pair', code, identity: householdFile, label: 'first phone' }, phone1);
    expect(paired.code, paired.out).toBe(0);
    identity2 = await generateX25519Identity();
    recipient2 = await identityToRecipient(identity2);
  }, 180_000);

  afterAll(async () => {
    await gateway?.stop();
    await broker?.close();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('devices key → devices add --out → --pin-from: the second phone is answered and its signed requests accepted', async () => {
    const phone2: AppOptions = { broker: broker.url, hub: HUB, state: join(root, 'phone2.json') };
    const key = await camveil(['app', 'devices', 'key', ...globals(phone2)]);
    expect(key.code, key.stderr).toBe(0);
    const { publicKey, keyId } = JSON.parse(key.stdout) as { publicKey: string; keyId: string };

    // Before it is given anything, the second phone cannot check a reply: refused, never "ok".
    const blind = await app({ kind: 'status' }, phone2);
    expect(blind.code).toBe(1);
    expect(blind.out).toContain('CAMVEIL_E_HUB_UNVERIFIED');

    const bundleFile = join(root, 'hub-keys.json');
    const added = await camveil(['app', 'devices', 'add', ...globals(phone1), '--public-key', publicKey, '--recipient', recipient2, '--label', 'second phone', '--out', bundleFile]);
    expect(added.code, added.stdout + added.stderr).toBe(0);
    const keys = await loadOrCreateHubKeys(join(root, 'hub'));
    const expected = { hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient };
    // The bundle is the first phone's pinned state, which is the hub's real keys.
    const phone1State = JSON.parse(readFileSync(phone1.state, 'utf8')) as { hubs: Record<string, object> };
    expect(phone1State.hubs[`camveil/${HUB}`]).toEqual(expected);
    expect(JSON.parse(readFileSync(bundleFile, 'utf8'))).toEqual(expected);
    expect(statSync(bundleFile).mode & 0o077).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ status: 'ok', data: { keyId, pinned: expected } });

    // The second phone's own identity opens the hub's sealed replies (sealed to the paired phones and the
    // household); given once, its path is remembered in the state file.
    const identity2File = join(root, 'phone2.key');
    writeFileSync(identity2File, `${identity2}\n`, { mode: 0o600 });
    const pinned = await camveil(['app', 'status', ...globals(phone2), '--pin-from', bundleFile, '--identity', identity2File]);
    expect(pinned.code, pinned.stdout + pinned.stderr).toBe(0);
    expect(JSON.parse(pinned.stdout)).toMatchObject({ status: 'ok', data: { health: { protocol: 2 }, state: { mode: expect.any(Object) as object } } });
    // Pinned for good: later commands need no bundle, and its signed requests are the hub's paired key's.
    expect((JSON.parse(readFileSync(phone2.state, 'utf8')) as { hubs: Record<string, object> }).hubs[`camveil/${HUB}`]).toEqual(expected);
    const granted = await app({ kind: 'consent', action: 'accept-policy', version: '2021-10-31' }, phone2);
    expect(granted.code, granted.out).toBe(0);
  }, 240_000);

  it('a bundle with other keys, or for another hub, is refused and pins nothing', async () => {
    const phone3: AppOptions = { broker: broker.url, hub: HUB, state: join(root, 'phone3.json') };
    const keys = await loadOrCreateHubKeys(join(root, 'hub'));
    const forger = await generateX25519Identity();
    // A substituted recipient: whoever wrote it would read what phone 3 seals. Replies are still signed by the
    // real hub, so nothing proves the bundle wrong before use; refusing to replace a pin is what protects.
    const realFile = join(root, 'real.json');
    writeFileSync(realFile, JSON.stringify({ hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient }));
    const ok = await app({ kind: 'status' }, { ...phone3, pinFrom: realFile });
    expect(ok.code, ok.out).toBe(0);
    // Pinned but holding no identity: the sealed reply is a clear error (exit 1), never garbage or "ok".
    const unreadable = await app({ kind: 'consent', action: 'withdraw', consent: 'cloudUpload', unsigned: true }, phone3);
    expect(unreadable.code).toBe(1);
    expect(JSON.parse(unreadable.out)).toMatchObject({ status: 'error', error: { code: 'CAMVEIL_E_REPLY_SEALED', message: expect.stringMatching(/no age identity/) as string } });
    const swapped = join(root, 'swapped.json');
    writeFileSync(swapped, JSON.stringify({ hubId: HUB, baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: await identityToRecipient(forger) }));
    const refused = await app({ kind: 'status' }, { ...phone3, pinFrom: swapped });
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('already pinned other keys');
    expect((JSON.parse(readFileSync(phone3.state, 'utf8')) as { hubs: Record<string, { recipient: string }> }).hubs[`camveil/${HUB}`]?.recipient).toBe(keys.recipient);

    const phone4: AppOptions = { broker: broker.url, hub: HUB, state: join(root, 'phone4.json') };
    const otherHub = join(root, 'other-hub.json');
    writeFileSync(otherHub, JSON.stringify({ hubId: 'another-hub', baseTopic: 'camveil', signingKey: keys.signingPublicKey, recipient: keys.recipient }));
    const wrongHub = await app({ kind: 'status' }, { ...phone4, pinFrom: otherHub });
    expect(wrongHub.code).toBe(1);
    expect(wrongHub.out).toContain('not camveil/devices-hub');
    // A bundle whose signing key is not the hub's: the hub's signed reply does not check against it.
    const phone5: AppOptions = { broker: broker.url, hub: HUB, state: join(root, 'phone5.json') };
    const forgedKey = join(root, 'forged-key.json');
    writeFileSync(forgedKey, JSON.stringify({ hubId: HUB, baseTopic: 'camveil', signingKey: Buffer.alloc(32, 7).toString('base64'), recipient: keys.recipient }));
    const unverified = await app({ kind: 'status' }, { ...phone5, pinFrom: forgedKey });
    expect(unverified.code).toBe(1);
    expect(unverified.out).toContain('CAMVEIL_E_HUB_UNVERIFIED');
  }, 120_000);
});
