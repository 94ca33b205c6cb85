import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import type { OutboxEntry } from '../../src/uplink/outbox.js';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startSwift, SWIFT_ACCESS_KEY, SWIFT_SECRET_KEY, type SwiftS3 } from './swift.js';

/** What the s3 uplink tests share: a directory, a household age key made by the age CLI, credentials files. */
export interface S3UplinkFixture {
  dir: string;
  /** age-keygen's identity file, for `age -d -i`. */
  identityFile: string;
  recipient: string;
  /** Swift's test account, chmod 600. */
  credentialsFile: string;
  /** The right access key with a wrong secret, chmod 600. */
  wrongCredentialsFile: string;
  /** A sealed object staged as a file, as the outbox holds it. */
  object(plaintextBytes: number, kind?: string): Promise<OutboxEntry & { plaintext: Buffer }>;
}

export const WRONG_SECRET = 'not-the-secret-0123456789';

export function s3UplinkFixture(): S3UplinkFixture {
  const dir = mkdtempSync(join(tmpdir(), 'camveil-s3-uplink-'));
  const identityFile = join(dir, 'household.txt');
  const made = spawnSync('age-keygen', ['-o', identityFile]);
  if (made.status !== 0) throw new Error(`age-keygen failed: ${made.stderr.toString()}`);
  const recipient = spawnSync('age-keygen', ['-y', identityFile]).stdout.toString().trim();
  const credentialsFile = join(dir, 's3-credentials.yaml');
  writeFileSync(credentialsFile, `accessKeyId: "${SWIFT_ACCESS_KEY}"\nsecretAccessKey: "${SWIFT_SECRET_KEY}"\n`, { mode: 0o600 });
  const wrongCredentialsFile = join(dir, 's3-wrong.json');
  writeFileSync(wrongCredentialsFile, JSON.stringify({ accessKeyId: SWIFT_ACCESS_KEY, secretAccessKey: WRONG_SECRET }), { mode: 0o600 });
  return {
    dir,
    identityFile,
    recipient,
    credentialsFile,
    wrongCredentialsFile,
    async object(plaintextBytes, kind = 'clip') {
      const objectId = newObjectId();
      const plaintext = randomBytes(plaintextBytes);
      const path = join(dir, `${objectId}.age`);
      writeFileSync(path, await encryptToBuffer([recipient], plaintext));
      const bytes = statSync(path).size;
      return { objectId, path, bytes, kind, cameraId: 'porch', plaintext };
    },
  };
}

/** Decrypts with Debian's age CLI; throws on a non-zero exit. */
export function ageDecrypt(identityFile: string, ciphertext: Uint8Array): Buffer {
  const result = spawnSync('age', ['-d', '-i', identityFile], { input: ciphertext, maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`age -d exited ${result.status}: ${result.stderr.toString()}`);
  return result.stdout;
}

/** The multipart uploads open in a bucket, as [key, uploadId]. */
export async function openMultipartUploads(client: S3Client, bucket: string): Promise<Array<[string, string]>> {
  const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (listed.Uploads ?? []).map((u) => [u.Key ?? '', u.UploadId ?? '']);
}

/** Polls an async predicate every 100 ms until it holds; throws with `what` after `timeoutMs`. */
export async function waitForAsync(what: string, predicate: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a suite of s3 uplink tests shares: the Swift peer and the fixture (set in beforeAll), and cleanups run after each test, last first. */
export interface SwiftUplinkSuite {
  swift: SwiftS3;
  fx: S3UplinkFixture;
  cleanups: Array<() => Promise<void> | void>;
}

/** Called inside a describe: starts Swift and makes the fixture once, runs each test's cleanups, stops it all at the end. */
export function swiftUplinkSuite(): SwiftUplinkSuite {
  const env = { cleanups: [] } as unknown as SwiftUplinkSuite;
  beforeAll(async () => {
    env.swift = await startSwift();
    env.fx = s3UplinkFixture();
  }, 120_000);
  afterEach(async () => {
    for (const c of env.cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await (env.swift as SwiftS3 | undefined)?.stop();
    if ((env.fx as S3UplinkFixture | undefined) !== undefined) rmSync(env.fx.dir, { recursive: true, force: true });
  });
  return env;
}
