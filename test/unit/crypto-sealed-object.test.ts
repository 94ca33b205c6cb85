import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Decrypter, generateHybridIdentity, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, it } from 'vitest';
import { collect, encryptToBuffer } from '../../src/crypto/age-stream.js';
import type { Manifest } from '../../src/crypto/manifest.js';
import { newObjectId, openObject, openObjectToBuffer, sealObject } from '../../src/crypto/sealed-object.js';
import { CamveilError } from '../../src/errors.js';

let identity: string;
let recipient: string;
let pqIdentity: string;
let pqRecipient: string;

beforeAll(async () => {
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  pqIdentity = await generateHybridIdentity();
  pqRecipient = await identityToRecipient(pqIdentity);
});

function manifest(overrides: Partial<Manifest> = {}): Manifest {
  return {
    version: 1,
    objectId: newObjectId(),
    kind: 'clip',
    cameraPseudonym: 'cam_abcdefghijklmnop',
    startedAt: '2026-11-23T10:00:00.000Z',
    durationMs: 12_000,
    contentType: 'video/mp4',
    policyVersion: '2026-10',
    consentVersion: '3',
    ...overrides,
  };
}

const digest = (b: Uint8Array): string => `${b.length}:${createHash('sha256').update(b).digest('hex')}`;

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  return error instanceof CamveilError ? error.code : `not a CamveilError: ${String(error)}`;
}

describe('sealed objects', () => {
  it('round-trips manifest and a streamed multi-MiB body', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 11);
    const m = manifest();
    const sealed = await collect(sealObject([recipient, pqRecipient], m, Readable.from([body.subarray(0, 1000), body.subarray(1000)])));
    for (const id of [identity, pqIdentity]) {
      const opened = await openObject(id, Readable.from([sealed.subarray(0, 7), sealed.subarray(7)]));
      expect(opened.manifest).toEqual(m);
      expect(digest(await collect(opened.body))).toBe(digest(body));
    }
  });

  it('round-trips an empty body and a buffer body', async () => {
    for (const body of [Buffer.alloc(0), Buffer.from('{"motion":true}')]) {
      const m = manifest({ kind: 'event', contentType: 'application/json', durationMs: undefined });
      const sealed = await collect(sealObject([recipient], m, body));
      const opened = await openObjectToBuffer(identity, sealed);
      expect(opened.body.toString()).toBe(body.toString());
      expect(opened.manifest.kind).toBe('event');
    }
  });

  it('is a plain age file whose plaintext is length || manifest JSON || body', async () => {
    const m = manifest({ kind: 'snapshot', contentType: 'image/jpeg' });
    const sealed = await collect(sealObject([recipient], m, Buffer.from('JPEGDATA')));
    expect(sealed.includes(m.cameraPseudonym!)).toBe(false);
    const d = new Decrypter();
    d.addIdentity(identity);
    const plaintext = Buffer.from(await d.decrypt(sealed));
    const length = plaintext.readUInt32BE(0);
    expect(JSON.parse(plaintext.subarray(4, 4 + length).toString())).toEqual(m);
    expect(plaintext.subarray(4 + length).toString()).toBe('JPEGDATA');
  });

  it('refuses to seal an invalid manifest, listing every problem', () => {
    let error: unknown;
    try {
      sealObject([recipient], { ...manifest(), kind: 'video' as never, objectId: 'x', extra: 1 } as Manifest, Buffer.alloc(0));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CamveilError);
    expect((error as CamveilError).code).toBe('CAMVEIL_E_MANIFEST_INVALID');
    expect((error as CamveilError).message).toMatch(/kind:/);
    expect((error as CamveilError).message).toMatch(/objectId:/);
    expect((error as CamveilError).message).toMatch(/extra/);
  });

  it('refuses a decrypted object whose manifest is bad, too long or cut short', async () => {
    const json = Buffer.from(JSON.stringify({ ...manifest(), kind: 'video' }));
    const withLength = (n: number, rest: Buffer) => Buffer.concat([Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), rest]);
    const cases = [
      withLength(json.length, json),
      withLength(5, Buffer.from('{not json')),
      withLength(0xffffffff, Buffer.alloc(10)),
      withLength(100, Buffer.from('{}')),
      Buffer.from([0, 0]),
    ];
    for (const plaintext of cases) {
      const file = await encryptToBuffer([recipient], plaintext);
      expect(await codeOf(openObject(identity, file))).toBe('CAMVEIL_E_MANIFEST_INVALID');
    }
  });

  it('reports a wrong identity as a decryption failure', async () => {
    const sealed = await collect(sealObject([recipient], manifest(), Buffer.from('x')));
    expect(await codeOf(openObject(pqIdentity, sealed))).toBe('CAMVEIL_E_DECRYPT_FAILED');
  });

  it('makes distinct 128-bit object ids in base32', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newObjectId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[a-z2-7]{26}$/);
  });
});
