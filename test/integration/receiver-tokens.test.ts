import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { pseudonym } from '../../src/crypto/pseudonym.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { silentLogger } from '../../src/log.js';
import { allowAllGate } from '../harness/allow-all-gate.js';
import { startReceiver, type Receiver } from '../../src/receiver/server.js';
import { addHubEntry, hashToken, newToken, readTokensFile } from '../../src/receiver/tokens.js';
import { openDatabase } from '../../src/store/database.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { HttpReceiverStore } from '../../src/uplink/http-receiver-store.js';
import { Uploader } from '../../src/uplink/uploader.js';
import { waitFor } from '../harness/wait.js';

const BIN = fileURLToPath(new URL('../../bin/camveil.js', import.meta.url));
const HUB_A = pseudonym(randomBytes(32), 'hub', 'a');
const HUB_B = pseudonym(randomBytes(32), 'hub', 'b');

const dir = mkdtempSync(join(tmpdir(), 'camveil-rtokens-'));
let recipient: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  recipient = await identityToRecipient(await generateX25519Identity());
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI in this process; resolves with its exit code and output. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['node', 'camveil', ...args], { stdout: (t) => (stdout += `${t}\n`), stderr: (t) => (stderr += `${t}\n`) });
  return { code, stdout, stderr };
}

async function tokensFileFor(name: string, entries: Record<string, { upload: string; read?: string }>): Promise<string> {
  const file = join(dir, name);
  for (const [hub, tokens] of Object.entries(entries)) {
    await addHubEntry(file, hub, { upload: hashToken(tokens.upload), ...(tokens.read === undefined ? {} : { read: hashToken(tokens.read) }) });
  }
  return file;
}

describe('receiver with per-hub tokens', () => {
  const A = { upload: newToken(), read: newToken() };
  const B = { upload: newToken() };
  let r: Receiver;
  let ageBody: Buffer;

  beforeAll(async () => {
    const file = await tokensFileFor('two-hubs.json', { [HUB_A]: A, [HUB_B]: B });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).not.toContain(A.upload);
    r = await startReceiver({ dir: join(dir, 'cloud'), tokens: await readTokensFile(file) });
    ageBody = await encryptToBuffer([recipient], Buffer.from('ciphertext for the household'));
  });
  afterAll(() => r.close());

  const call = (method: string, path: string, token: string | undefined, body?: Buffer) =>
    fetch(`${r.url}/v1/objects/${path}`, {
      method,
      ...(body === undefined ? {} : { body }),
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });

  it("lets a hub's upload token put, list, read and delete its own objects", async () => {
    const id = newObjectId();
    expect((await call('PUT', `${HUB_A}/${id}`, A.upload, ageBody)).status).toBe(200);
    const list = (await (await call('GET', HUB_A, A.upload)).json()) as Array<{ objectId: string }>;
    expect(list.map((o) => o.objectId)).toEqual([id]);
    const got = await call('GET', `${HUB_A}/${id}`, A.upload);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(ageBody)).toBe(true);
    expect((await call('DELETE', `${HUB_A}/${id}`, A.upload)).status).toBe(200);
    expect((await call('GET', `${HUB_A}/${id}`, A.upload)).status).toBe(404);
  });

  it("refuses hub A's tokens under hub B's pseudonym with 403 for put, list, read and delete, and changes nothing", async () => {
    const bId = newObjectId();
    expect((await call('PUT', `${HUB_B}/${bId}`, B.upload, ageBody)).status).toBe(200);
    for (const token of [A.upload, A.read]) {
      const answers = [
        await call('PUT', `${HUB_B}/${bId}`, token, await encryptToBuffer([recipient], Buffer.from('overwrite'))),
        await call('PUT', `${HUB_B}/${newObjectId()}`, token, ageBody),
        await call('GET', HUB_B, token),
        await call('GET', `${HUB_B}/${bId}`, token),
        await call('DELETE', `${HUB_B}/${bId}`, token),
      ];
      for (const res of answers) {
        expect(res.status).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('forbidden');
      }
    }
    // B's object is intact and B still sees exactly it.
    const list = (await (await call('GET', HUB_B, B.upload)).json()) as Array<{ objectId: string }>;
    expect(list.map((o) => o.objectId)).toEqual([bId]);
    expect(Buffer.from(await (await call('GET', `${HUB_B}/${bId}`, B.upload)).arrayBuffer()).equals(ageBody)).toBe(true);
    expect((await call('DELETE', `${HUB_B}/${bId}`, B.upload)).status).toBe(200);
  });

  it('lets a read token list and fetch its own hub only, never put or delete; unknown or missing tokens get 401', async () => {
    const id = newObjectId();
    expect((await call('PUT', `${HUB_A}/${id}`, A.upload, ageBody)).status).toBe(200);
    expect((await call('GET', HUB_A, A.read)).status).toBe(200);
    expect((await call('GET', `${HUB_A}/${id}`, A.read)).status).toBe(200);
    expect((await call('PUT', `${HUB_A}/${newObjectId()}`, A.read, ageBody)).status).toBe(403);
    expect((await call('DELETE', `${HUB_A}/${id}`, A.read)).status).toBe(403);
    for (const token of [undefined, 'not-a-token', newToken()]) {
      for (const [method, path] of [['GET', HUB_A], ['PUT', `${HUB_A}/${newObjectId()}`], ['DELETE', `${HUB_A}/${id}`]] as const) {
        const res = await call(method, path, token, method === 'PUT' ? ageBody : undefined);
        expect(res.status).toBe(401);
      }
    }
    // A pseudonym with no entry: a known token is still someone else's (403).
    expect((await call('GET', pseudonym(randomBytes(32), 'hub', 'c'), A.upload)).status).toBe(403);
    expect((await call('GET', `${HUB_A}/${id}`, A.upload)).status).toBe(200);
  });
});

describe('hubs keep their token file unchanged', () => {
  it('uploads with the uplink token file once the receiver binds that token to the hub (migration from one shared token)', async () => {
    const old = newToken();
    const hubTokenFile = join(dir, 'hub-token');
    writeFileSync(hubTokenFile, `${old}\n`, { mode: 0o600 });
    const tokens = join(dir, 'migrated.json');
    const added = await cli(['receiver', 'add-hub', HUB_A, '--tokens', tokens, '--upload-token-file', hubTokenFile]);
    expect(added.code).toBe(0);
    expect(added.stdout).toBe(''); // the existing token is bound, nothing new to show
    expect(readFileSync(tokens, 'utf8')).not.toContain(old);
    const r = await startReceiver({ dir: join(dir, 'cloud-migrated'), tokens: await readTokensFile(tokens) });
    cleanups.push(() => r.close());
    const db = openDatabase(join(dir, 'hub-data'));
    cleanups.push(() => {
      db.close();
    });
    const outbox = new Outbox(db);
    const path = join(dir, 'clip.age');
    writeFileSync(path, await encryptToBuffer([recipient], randomBytes(4096)));
    const objectId = newObjectId();
    outbox.enqueue({ objectId, path, bytes: statSync(path).size, kind: 'clip' });
    const uploader = new Uploader({
      outbox,
      gate: allowAllGate,
      remote: new HttpReceiverStore({ endpoint: validateEndpoint(r.url), hubPseudonym: HUB_A, tokenFile: hubTokenFile }),
      logger: silentLogger(),
    });
    cleanups.push(() => uploader.stop());
    uploader.start();
    await waitFor('upload', () => outbox.get(objectId)?.state === 'uploaded', 30_000);
    expect(r.received()).toEqual([{ hub: HUB_A, objectId, bytes: statSync(path).size }]);
  });
});

describe('camveil receiver (CLI)', () => {
  it('add-hub prints fresh tokens once and stores only their digests, mode 0600; refuses a second entry without --replace', async () => {
    const file = join(dir, 'cli.json');
    const first = await cli(['receiver', 'add-hub', HUB_A, '--tokens', file, '--read']);
    expect(first.code).toBe(0);
    const [upload, read] = first.stdout.trim().split('\n').map((line) => line.split(' '));
    expect(upload?.[0]).toBe('upload');
    expect(read?.[0]).toBe('read');
    const text = readFileSync(file, 'utf8');
    expect(text).toContain(hashToken(upload![1]!));
    expect(text).toContain(hashToken(read![1]!));
    expect(text).not.toContain(upload![1]!);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = await cli(['receiver', 'add-hub', HUB_A, '--tokens', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('CAMVEIL_E_USAGE');
    const replaced = await cli(['receiver', 'add-hub', HUB_A, '--tokens', file, '--replace']);
    expect(replaced.code).toBe(0);
    expect(readFileSync(file, 'utf8')).not.toContain(hashToken(upload![1]!));
    expect((await cli(['receiver', 'add-hub', 'hub_NOPE', '--tokens', file])).code).toBe(2);
  });

  it('exits 2 with a clear error for a bad tokens file, and for the removed --token-file', async () => {
    const valid = JSON.stringify({ version: 1, hubs: { [HUB_A]: { upload: hashToken('x') } } });
    const cases: Array<[string, string, number | undefined, RegExp]> = [
      ['missing.json', '', undefined, /CAMVEIL_E_SECRET_UNREADABLE: receiver tokens file .*missing\.json cannot be opened \(ENOENT\)/],
      ['open.json', valid, 0o644, /CAMVEIL_E_SECRET_UNREADABLE: .*open\.json has group\/other permission bits \(mode 644\); run chmod 600/],
      ['not-json.json', 'hub_a deadbeef\n', 0o600, /CAMVEIL_E_CONFIG_INVALID: .*not-json\.json is not JSON/],
      ['bad-hash.json', JSON.stringify({ version: 1, hubs: { [HUB_A]: { upload: 'plain-token' } } }), 0o600, new RegExp(`hubs\\.${HUB_A}\\.upload: must be 64`)],
      ['bad-key.json', JSON.stringify({ version: 1, hubs: { living_room: { upload: hashToken('x') } } }), 0o600, /hubs\.living_room: key must be a hub pseudonym/],
      ['shared.json', JSON.stringify({ version: 1, hubs: { [HUB_A]: { upload: hashToken('x') }, [HUB_B]: { upload: hashToken('x') } } }), 0o600, /same token as hubs\./],
      ['extra.json', JSON.stringify({ version: 1, hubs: {}, token: 'x' }), 0o600, /CAMVEIL_E_CONFIG_INVALID/],
    ];
    for (const [name, content, mode, error] of cases) {
      const file = join(dir, name);
      if (mode !== undefined) {
        writeFileSync(file, content);
        chmodSync(file, mode);
      }
      const r = await cli(['receiver', '--dir', join(dir, 'cloud-cli'), '--tokens', file]);
      expect(r.code, name).toBe(2);
      expect(r.stderr, name).toMatch(error);
      expect(r.stderr, name).not.toContain(hashToken('x'));
    }
    symlinkSync(join(dir, 'extra.json'), join(dir, 'link.json'));
    expect((await cli(['receiver', '--dir', dir, '--tokens', join(dir, 'link.json')])).stderr).toMatch(/is a symbolic link/);
    const removed = await cli(['receiver', '--dir', dir, '--token-file', join(dir, 'hub-token')]);
    expect(removed.code).toBe(2);
    expect(removed.stderr).toMatch(/--token-file .* was removed: .*add-hub/);
    expect((await cli(['receiver', '--dir', dir])).code).toBe(2);
  });

  it('a running receiver takes a hub added later after SIGHUP, and keeps its tokens when the file turns bad', async () => {
    const file = join(dir, 'live.json');
    const a = newToken();
    await addHubEntry(file, HUB_A, { upload: hashToken(a) });
    const child = spawn(process.execPath, [BIN, 'receiver', '--dir', join(dir, 'cloud-live'), '--tokens', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.resume();
    // Logs are JSON lines on stdout too; the URL is the line that is not JSON.
    const urlLine = () => out.split('\n').find((line) => line.startsWith('http://'));
    await waitFor('receiver URL', () => urlLine() !== undefined, 60_000);
    const url = urlLine()!;
    const list = (hub: string, token: string) => fetch(`${url}/v1/objects/${hub}`, { headers: { authorization: `Bearer ${token}` } }).then((res) => res.status);
    const added = await cli(['receiver', 'add-hub', HUB_B, '--tokens', file]);
    const b = added.stdout.trim().split(' ')[1]!;
    expect(await list(HUB_B, b)).toBe(401);
    child.kill('SIGHUP');
    await waitFor('reloaded', () => out.includes('receiver tokens reloaded'), 30_000);
    expect(await list(HUB_B, b)).toBe(200);
    expect(await list(HUB_A, b)).toBe(403);
    writeFileSync(file, 'garbage');
    child.kill('SIGHUP');
    await waitFor('reload refused', () => out.includes('not reloaded'), 30_000);
    expect(await list(HUB_A, a)).toBe(200);
    child.kill('SIGTERM');
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
  }, 120_000);
});
