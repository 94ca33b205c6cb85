import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithPeers } from '../harness/peers.js';
import { startSwift, type SwiftS3 } from '../harness/swift.js';

/**
 * The S3-compatible peer itself (Debian's Swift with s3api): the harness starts it, and the SDK client the
 * hub builds (src/s3/s3-client.ts) stores, reads back, lists and batch-deletes on it. DeleteObjects is the
 * request Swift refuses without the Content-MD5 header the client adds.
 */
describeWithPeers(['swift'], 'OpenStack Swift s3api on loopback (the S3 peer)', () => {
  let swift: SwiftS3;
  beforeAll(async () => {
    swift = await startSwift();
  }, 120_000);
  afterAll(async () => {
    await swift?.stop();
  });

  it('stores an object byte for byte, lists it, and deletes a batch (Content-MD5 added)', async () => {
    const bucket = await swift.createBucket();
    const body = Buffer.from([0, 1, 2, 250, 255]);
    await swift.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/h/one.age', Body: body }));
    await swift.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/h/two.age', Body: body }));
    const got = await swift.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'p/h/one.age' }));
    expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(body);
    const listed = await swift.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'p/h/' }));
    expect(listed.Contents?.map((o) => [o.Key, o.Size])).toEqual([
      ['p/h/one.age', 5],
      ['p/h/two.age', 5],
    ]);
    const deleted = await swift.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'p/h/one.age' }, { Key: 'p/h/two.age' }] } }));
    expect(deleted.Errors ?? []).toEqual([]);
    expect((await swift.client.send(new ListObjectsV2Command({ Bucket: bucket }))).KeyCount).toBe(0);
  }, 60_000);
});
