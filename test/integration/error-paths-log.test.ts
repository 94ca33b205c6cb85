import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { newObjectId } from '../../src/crypto/sealed-object.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { localRequest } from '../../src/policy/consent-service.js';
import { allowAllGate } from '../harness/allow-all-gate.js';
import type { ClipStream, MediaSink } from '../../src/recording/sink.js';
import { openDatabase } from '../../src/store/database.js';
import { validateEndpoint } from '../../src/uplink/endpoint.js';
import { Outbox } from '../../src/uplink/outbox.js';
import { HttpReceiverStore } from '../../src/uplink/http-receiver-store.js';
import { Uploader } from '../../src/uplink/uploader.js';
import { describeWithPeers } from '../harness/peers.js';
import { motionVideo } from '../harness/video.js';
import { waitFor } from '../harness/wait.js';

const SECRET = 'rtsp://admin:hunter2@cam.local/stream';

interface Line {
  level: number;
  msg: string;
  code?: string;
  err?: { type?: string; message?: string; code?: string; cause?: { code?: string; message?: string } };
}

/** The real logger (JSON lines, redaction, the err serializer) writing into memory. */
function realLogger() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return {
    logger: createLogger({ level: 'debug', destination: stream }),
    lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line),
    text: () => text,
  };
}

/** What a failing disk throws: an errno error whose message quotes a URL with credentials. */
function diskError(): Error {
  return Object.assign(new Error(`ENOSPC: no space left on device, write (${SECRET})`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
}

/** A sink that fails every clip and snapshot, after reading a little of the clip (as a real store would). */
class FailingSink implements MediaSink {
  async clip(clip: ClipStream): Promise<void> {
    await clip.body[Symbol.asyncIterator]().next();
    throw diskError();
  }
  snapshot(): Promise<void> {
    return Promise.reject(diskError());
  }
}

const root = mkdtempSync(path.join(os.tmpdir(), 'camveil-errlog-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * Every error path that logs, run through the real logger: before, these logged `err: error.message`, the
 * serializer threw on the string, and the rejection ended the process. Each line must carry the error's
 * message and code, and no secret.
 */
describeWithPeers(['ffmpeg'], 'error paths through the real logger', () => {
  it('clip sink failure, snapshot failure, face worker failure: JSON lines with message and code, no secret', async () => {
    const empty = path.join(root, 'no-models');
    mkdirSync(empty);
    process.env.CAMVEIL_FACE_MODEL_DIR = empty;
    const log = realLogger();
    const config = validateConfig(
      {
        hub: { id: 'errlog-hub', region: 'DE' },
        dataDir: path.join(root, 'hub'),
        // Objects off: the face stage must be offered the box's frames (with objects on, no person, no face look).
        cameras: [{ id: 'porch', source: `file:${motionVideo({ seconds: 12, motionAt: 2, motionUntil: 5, width: 640, height: 360 })}`, faceRecognition: true, objects: { enabled: false } }],
        recording: { preRollSeconds: 1, postRollSeconds: 1, maxClipSeconds: 10 },
        privacy: { faceCapableOverride: true },
      },
      'test config',
      root,
    );
    const gateway = new Gateway({ config, logger: log.logger, sink: new FailingSink() });
    try {
      await gateway.start();
      await gateway.consent.acceptPolicy('2021-10-31', localRequest('test'));
      await gateway.consent.grant('faceRecognition', localRequest('test'));
      const has = (msg: string) => log.lines().some((l) => l.msg === msg);
      await waitFor('the three failures logged', () => has('the sink failed to take a clip') && has('snapshot failed') && has('face stage: worker operation failed'), 90_000);
      const find = (msg: string) => log.lines().find((l) => l.msg === msg)!;
      for (const msg of ['the sink failed to take a clip', 'snapshot failed']) {
        expect(find(msg).err).toMatchObject({ code: 'ENOSPC', message: 'ENOSPC: no space left on device, write (rtsp://***@cam.local/stream)' });
      }
      expect(find('face stage: worker operation failed').err).toMatchObject({ code: 'CAMVEIL_E_MODEL_INVALID' });
      expect(find('face stage: worker operation failed').err?.message).toContain('missing or unreadable (ENOENT)');
      expect(log.text()).not.toContain('hunter2');
    } finally {
      delete process.env.CAMVEIL_FACE_MODEL_DIR;
      await gateway.stop();
    }
  }, 120_000);

  it('uploader failure: a JSON line with the code and reason, no token', async () => {
    // A port that refuses connections: bound, then closed.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const p = (server.address() as { port: number }).port;
        server.close(() => resolve(p));
      });
    });
    const dataDir = path.join(root, 'uplink');
    const db = openDatabase(dataDir);
    const outbox = new Outbox(db);
    const recipient = await identityToRecipient(await generateX25519Identity());
    const file = path.join(dataDir, 'obj.age');
    writeFileSync(file, await encryptToBuffer([recipient], Buffer.from('clip')));
    const objectId = newObjectId();
    outbox.enqueue({ objectId, path: file, bytes: 100, kind: 'clip', cameraId: 'porch' });
    const tokenFile = path.join(dataDir, 'token');
    writeFileSync(tokenFile, 'tok-secret-42\n', { mode: 0o600 });
    const log = realLogger();
    const uploader = new Uploader({ outbox, gate: allowAllGate, remote: new HttpReceiverStore({ endpoint: validateEndpoint(`http://127.0.0.1:${port}`), hubPseudonym: 'hub_aaaaaaaaaaaaaaaa', tokenFile }), logger: log.logger, backoffBaseMs: 50, backoffCapMs: 100 });
    try {
      uploader.start();
      await waitFor('an upload failure logged', () => log.lines().some((l) => l.msg === 'upload failed; will retry'), 30_000);
      expect(log.lines().find((l) => l.msg === 'upload failed; will retry')).toMatchObject({ code: 'CAMVEIL_E_UPLOAD_FAILED' });
      expect(log.text()).not.toContain('tok-secret-42');
    } finally {
      await uploader.stop();
      db.close();
    }
  }, 60_000);
});
