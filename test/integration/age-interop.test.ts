import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decrypter } from 'age-encryption';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runKeygen } from '../../src/commands/keygen.js';
import { collect, decryptToBuffer, encryptStream, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { HUB_IDENTITY_FILE, loadOrCreateHubKeys } from '../../src/crypto/hub-keys.js';
import { parseIdentityFile } from '../../src/crypto/identities.js';
import { newObjectId, openObjectToBuffer, sealObject } from '../../src/crypto/sealed-object.js';
import { describeWithPeers } from '../harness/peers.js';

const MiB = 1024 * 1024;
const digest = (b: Uint8Array): string => `${b.length}:${createHash('sha256').update(b).digest('hex')}`;

/** Runs the age CLI with `input` on stdin; returns stdout, failing the test on a non-zero exit. */
function age(args: string[], input: Uint8Array): Buffer {
  const result = spawnSync('age', args, { input, maxBuffer: 256 * MiB });
  if (result.status !== 0) throw new Error(`age ${args.join(' ')} exited ${result.status}: ${result.stderr.toString()}`);
  return result.stdout;
}

describeWithPeers(['age'], 'age CLI interop', () => {
  let dir: string;
  let keyA: string;
  let keyB: string;
  let recipientA: string;
  let recipientB: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camveil-age-'));
    keyA = join(dir, 'a.txt');
    keyB = join(dir, 'b.txt');
    for (const key of [keyA, keyB]) {
      const made = spawnSync('age-keygen', ['-o', key]);
      expect(made.status).toBe(0);
    }
    recipientA = spawnSync('age-keygen', ['-y', keyA]).stdout.toString().trim();
    recipientB = spawnSync('age-keygen', ['-y', keyB]).stdout.toString().trim();
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 5 * MiB + 3])('age -d decrypts what we encrypt (%i bytes)', async (n) => {
    const plaintext = randomBytes(n);
    const file = await encryptToBuffer([recipientA], plaintext);
    expect(digest(age(['-d', '-i', keyA], file))).toBe(digest(plaintext));
  });

  it('age -d decrypts a multi-recipient file with each identity', async () => {
    const plaintext = randomBytes(100_000);
    const file = await encryptToBuffer([recipientA, recipientB], plaintext);
    expect(digest(age(['-d', '-i', keyA], file))).toBe(digest(plaintext));
    expect(digest(age(['-d', '-i', keyB], file))).toBe(digest(plaintext));
  });

  it('age -d reads our stream piped straight into it (20 MiB, no buffering on our side)', async () => {
    const child = spawn('age', ['-d', '-i', keyA], { stdio: ['pipe', 'pipe', 'inherit'] });
    const hash = createHash('sha256');
    let received = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
    });
    const expected = createHash('sha256');
    function* source(): Generator<Buffer> {
      for (let i = 0; i < 20; i++) {
        const chunk = randomBytes(MiB);
        expected.update(chunk);
        yield chunk;
      }
    }
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    encryptStream([recipientA], source()).pipe(child.stdin);
    expect(await exited).toBe(0);
    expect(received).toBe(20 * MiB);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('we and typage decrypt what age -r encrypts', async () => {
    const identityA = (await parseIdentityFile(await readFile(keyA, 'utf8'), keyA))[0]!;
    for (const n of [0, 1, 65_536, 65_537, 2 * MiB]) {
      const plaintext = randomBytes(n);
      const file = age(['-r', recipientA, '-r', recipientB], plaintext);
      expect(digest(await decryptToBuffer(identityA, file))).toBe(digest(plaintext));
      const d = new Decrypter();
      d.addIdentity(identityA);
      expect(digest(await d.decrypt(file))).toBe(digest(plaintext));
    }
  });

  it("age reads camveil keygen's identity file, both ways", async () => {
    const out: string[] = [];
    const err: string[] = [];
    await runKeygen({}, { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    const keyFile = join(dir, 'camveil-key.txt');
    await writeFile(keyFile, `${out.join('\n')}\n`, { mode: 0o600 });
    const recipient = err[0]!.replace('Public key: ', '');
    expect(spawnSync('age-keygen', ['-y', keyFile]).stdout.toString().trim()).toBe(recipient);
    const plaintext = randomBytes(70_000);
    expect(digest(age(['-d', '-i', keyFile], await encryptToBuffer([recipient], plaintext)))).toBe(digest(plaintext));
    const [identity] = await parseIdentityFile(out.join('\n'), 'stdout');
    expect(digest(await decryptToBuffer(identity!, age(['-r', recipient], plaintext)))).toBe(digest(plaintext));
  });

  it("age reads the hub's key file, and the app can seal objects for the hub", async () => {
    const dataDir = join(dir, 'data');
    const hub = await loadOrCreateHubKeys(dataDir);
    const plaintext = Buffer.from('camera password from the app');
    const file = age(['-r', hub.recipient], plaintext);
    expect((await decryptToBuffer(hub.identity, file)).toString()).toBe(plaintext.toString());
    const ours = await encryptToBuffer([hub.recipient], plaintext);
    expect(age(['-d', '-i', join(dataDir, 'keys', HUB_IDENTITY_FILE)], ours).toString()).toBe(plaintext.toString());
  });

  it('age -d opens a sealed object: length, manifest JSON, body', async () => {
    const manifest = {
      version: 1 as const,
      objectId: newObjectId(),
      kind: 'clip' as const,
      cameraPseudonym: 'cam_abcdefghijklmnop',
      startedAt: '2026-11-23T10:00:00Z',
      durationMs: 5000,
      contentType: 'video/mp4',
    };
    const body = randomBytes(300_000);
    const sealed = await collect(sealObject([recipientA, recipientB], manifest, body));
    const plaintext = age(['-d', '-i', keyB], sealed);
    const length = plaintext.readUInt32BE(0);
    expect(JSON.parse(plaintext.subarray(4, 4 + length).toString())).toEqual(manifest);
    expect(digest(plaintext.subarray(4 + length))).toBe(digest(body));
    const identityA = (await parseIdentityFile(await readFile(keyA, 'utf8'), keyA))[0]!;
    const opened = await openObjectToBuffer(identityA, sealed);
    expect(opened.manifest).toEqual(manifest);
  });
});
