import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Decrypter, Encrypter, generateHybridIdentity, generateX25519Identity, identityToRecipient } from 'age-encryption';
import fc from 'fast-check';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { createHeader } from '../../src/crypto/age-header.js';
import { CHUNK_SIZE, ChunkCounter, PAYLOAD_NONCE_SIZE, payloadKey, sealChunk } from '../../src/crypto/age-payload.js';
import { collect, decryptStream, decryptToBuffer, encryptStream, encryptToBuffer } from '../../src/crypto/age-stream.js';
import { CamveilError } from '../../src/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let x: { identity: string; recipient: string };
let x2: { identity: string; recipient: string };
let pq: { identity: string; recipient: string };

beforeAll(async () => {
  const make = async (gen: () => Promise<string>) => {
    const identity = await gen();
    return { identity, recipient: await identityToRecipient(identity) };
  };
  x = await make(generateX25519Identity);
  x2 = await make(generateX25519Identity);
  pq = await make(generateHybridIdentity);
});

async function typageDecrypt(identity: string, file: Uint8Array): Promise<Buffer> {
  const d = new Decrypter();
  d.addIdentity(identity);
  return Buffer.from(await d.decrypt(file));
}

/** Splits bytes at the given cut points, to feed streams with arbitrary chunk boundaries. */
function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  return out;
}

/** Byte equality by length and digest: vitest's deep equality walks megabytes element by element. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  const digest = (b: Uint8Array) => `${b.length}:${createHash('sha256').update(b).digest('hex')}`;
  expect(digest(actual)).toBe(digest(expected));
}

/** Payload size of an age file for n plaintext bytes: one 16-byte tag per started 64 KiB chunk (min 1). */
function payloadSize(n: number): number {
  return n + 16 * Math.max(1, Math.ceil(n / CHUNK_SIZE));
}

describe('encryptStream', () => {
  const sizes = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1, 3 * MiB + 7];

  it.each(sizes)('writes a standard age file typage decrypts (%i bytes)', async (n) => {
    const plaintext = randomBytes(n);
    const file = await encryptToBuffer([x.recipient], plaintext);
    expect(file.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    expectSameBytes(await typageDecrypt(x.identity, file), plaintext);
    expectSameBytes(await decryptToBuffer(x.identity, file), plaintext);
  });

  it.each(sizes)('has exactly the STREAM framing of the spec (%i bytes)', async (n) => {
    const file = await encryptToBuffer([x.recipient], randomBytes(n));
    const headerLength = file.indexOf('\n---') + 1;
    const headerEnd = file.indexOf('\n', headerLength) + 1;
    expect(file.length - headerEnd - PAYLOAD_NONCE_SIZE).toBe(payloadSize(n));
  });

  it('encrypts to post-quantum hybrid recipients that typage decrypts', async () => {
    const plaintext = randomBytes(CHUNK_SIZE + 5);
    const file = await encryptToBuffer([pq.recipient], plaintext);
    expect(file.includes('-> mlkem768x25519 ')).toBe(true);
    expectSameBytes(await typageDecrypt(pq.identity, file), plaintext);
    expectSameBytes(await decryptToBuffer(pq.identity, file), plaintext);
  });

  it('encrypts once for several recipients, each of which can decrypt', async () => {
    const plaintext = randomBytes(200 * KiB);
    const file = await encryptToBuffer([x.recipient, x2.recipient, pq.recipient], plaintext);
    for (const { identity } of [x, x2, pq]) {
      expectSameBytes(await typageDecrypt(identity, file), plaintext);
      expectSameBytes(await decryptToBuffer(identity, file), plaintext);
    }
  });

  it('uses a fresh file key and nonce for every file', async () => {
    const plaintext = Buffer.alloc(100);
    const a = await encryptToBuffer([x.recipient], plaintext);
    const b = await encryptToBuffer([x.recipient], plaintext);
    expect(a.subarray(-116)).not.toEqual(b.subarray(-116));
  });

  it('accepts a Readable and gives the same plaintext back', async () => {
    const plaintext = randomBytes(MiB + 3);
    const source = Readable.from(chunked(plaintext, [10, 70_000, 500_000]));
    const file = await collect(encryptStream([x.recipient], source));
    expectSameBytes(await typageDecrypt(x.identity, file), plaintext);
  });

  it('round-trips any bytes whatever the chunking on both sides (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3 * CHUNK_SIZE + 10 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (n, inCuts, outCuts) => {
          const plaintext = randomBytes(n);
          const file = await collect(encryptStream([x.recipient], chunked(plaintext, inCuts)));
          const back = await collect(decryptStream(x.identity, chunked(file, outCuts)));
          expectSameBytes(back, plaintext);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('respects backpressure: an unread output stops pulling the source', async () => {
    let pulled = 0;
    let finished = false;
    async function* endless(): AsyncGenerator<Buffer> {
      try {
        for (;;) {
          pulled += MiB;
          yield Buffer.alloc(MiB);
          await Promise.resolve();
        }
      } finally {
        finished = true;
      }
    }
    const out = encryptStream([x.recipient], endless());
    const iterator = (out as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    await iterator.next();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The output buffers 256 KiB; the source is pulled one 1 MiB chunk ahead at most.
    expect(pulled).toBeLessThanOrEqual(2 * MiB);
    await iterator.return?.();
    // Readable.from closes its generator while tearing down, a few ticks after return() resolves.
    await vi.waitFor(() => expect(finished).toBe(true), { timeout: 2000 });
  });

  it('fails the stream when the source fails', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(10);
      await Promise.resolve();
      throw new Error('camera went away');
    }
    await expect(collect(encryptStream([x.recipient], failing()))).rejects.toThrow('camera went away');
  });

  it('refuses string chunks rather than guessing an encoding', async () => {
    await expect(collect(encryptStream([x.recipient], Readable.from(['text'])))).rejects.toThrow(TypeError);
  });

  it('refuses bad recipients synchronously, naming them', () => {
    expect(() => encryptStream([], [])).toThrow(/at least one household recipient/);
    const bad = `${x.recipient.slice(0, -1)}${x.recipient.endsWith('q') ? 'p' : 'q'}`;
    let error: unknown;
    try {
      encryptStream([x.recipient, bad], []);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CamveilError);
    expect((error as CamveilError).code).toBe('CAMVEIL_E_KEY_INVALID');
    expect((error as CamveilError).message).toContain('recipients[1]');
    expect((error as CamveilError).message).toContain(bad.slice(0, 14));
  });
});

describe('decryptStream', () => {
  it('decrypts files typage encrypted, of every size class', async () => {
    for (const n of [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * MiB]) {
      const plaintext = randomBytes(n);
      const e = new Encrypter();
      e.addRecipient(pq.recipient);
      e.addRecipient(x.recipient);
      const file = await e.encrypt(plaintext);
      expectSameBytes(await decryptToBuffer(x.identity, file), plaintext);
      expectSameBytes(await decryptToBuffer(pq.identity, file), plaintext);
    }
  });

  async function expectDecryptFailure(identity: string, file: Uint8Array, pattern: RegExp): Promise<void> {
    const error: unknown = await decryptToBuffer(identity, file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CamveilError);
    expect((error as CamveilError).code).toBe('CAMVEIL_E_DECRYPT_FAILED');
    expect((error as CamveilError).message).toMatch(pattern);
  }

  it('refuses a file for someone else', async () => {
    const file = await encryptToBuffer([x.recipient], Buffer.from('hello'));
    await expectDecryptFailure(x2.identity, file, /no identity matched/);
  });

  it('refuses a file whose payload was changed', async () => {
    const file = await encryptToBuffer([x.recipient], randomBytes(3 * CHUNK_SIZE));
    for (const at of [file.length - 1, file.length - CHUNK_SIZE - 40, file.length - 2 * CHUNK_SIZE - 40]) {
      const bad = Buffer.from(file);
      bad[at]! ^= 0x01;
      await expectDecryptFailure(x.identity, bad, /authentication/);
    }
  });

  it('refuses a file whose header was changed', async () => {
    const file = await encryptToBuffer([x.recipient, x2.recipient], Buffer.from('hello'));
    const bad = Buffer.from(file);
    const second = bad.indexOf('-> X25519 ', bad.indexOf('-> X25519 ') + 1);
    bad[second + 12]! ^= 0x01; // a stanza x cannot open, but covered by the header MAC
    await expectDecryptFailure(x.identity, bad, /HMAC/);
  });

  it('refuses truncated files, also when cut at a chunk boundary', async () => {
    const file = await encryptToBuffer([x.recipient], randomBytes(2 * CHUNK_SIZE + 100));
    await expectDecryptFailure(x.identity, file.subarray(0, file.length - 1), /authentication/);
    await expectDecryptFailure(x.identity, file.subarray(0, file.length - 116), /authentication/);
    await expectDecryptFailure(x.identity, file.subarray(0, 30), /header/);
    await expectDecryptFailure(x.identity, Buffer.alloc(0), /empty file/);
  });

  it('refuses an empty final chunk after a full one, as the spec requires', async () => {
    // Built by hand: typage, the CLI and we never write this, but a forger could.
    const { header, fileKey } = await createHeader([x.recipient]);
    const nonce = randomBytes(16);
    const key = payloadKey(fileKey, nonce);
    const counter = new ChunkCounter();
    const full = sealChunk(key, counter.next(false), Buffer.alloc(CHUNK_SIZE));
    const empty = sealChunk(key, counter.next(true), Buffer.alloc(0));
    const file = Buffer.concat([header, nonce, ...full, ...empty]);
    await expectDecryptFailure(x.identity, file, /final chunk is empty/);
  });

  it('does not emit plaintext of a chunk that fails authentication', async () => {
    const plaintext = randomBytes(3 * CHUNK_SIZE);
    const file = await encryptToBuffer([x.recipient], plaintext);
    const bad = Buffer.from(file);
    bad[bad.length - 20]! ^= 0x80; // inside the last chunk
    const received: Buffer[] = [];
    await expect(
      (async () => {
        for await (const chunk of decryptStream(x.identity, bad) as AsyncIterable<Buffer>) received.push(chunk);
      })(),
    ).rejects.toThrow(CamveilError);
    expectSameBytes(Buffer.concat(received), plaintext.subarray(0, 2 * CHUNK_SIZE));
  });

  it('refuses a malformed identity without quoting it', () => {
    const broken = `${x.identity.slice(0, -2)}QQ`;
    let error: unknown;
    try {
      decryptStream(broken, Buffer.alloc(0));
    } catch (e) {
      error = e;
    }
    expect((error as CamveilError).code).toBe('CAMVEIL_E_KEY_INVALID');
    expect((error as CamveilError).message).not.toContain(broken.slice(16, 40));
    expect(() => decryptStream('age1notanidentity', Buffer.alloc(0))).toThrow(CamveilError);
  });
});

describe('decryptStream limits', () => {
  it('refuses a file without a header end within 1 MiB', async () => {
    const garbage = Buffer.concat([Buffer.from('age-encryption.org/v1\n'), Buffer.alloc(2 * MiB, 0x41)]);
    const error: unknown = await decryptToBuffer(x.identity, garbage).catch((e: unknown) => e);
    expect((error as CamveilError).code).toBe('CAMVEIL_E_DECRYPT_FAILED');
    expect((error as CamveilError).message).toMatch(/no header end/);
  });
});
