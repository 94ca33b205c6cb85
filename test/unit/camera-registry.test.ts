import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, describe, expect, it } from 'vitest';
import { cameraSchema } from '../../src/config/schema.js';
import { CameraRegistry } from '../../src/control/camera-registry.js';
import { encryptToBuffer } from '../../src/crypto/age-stream.js';
import { openDatabase } from '../../src/store/database.js';

describe('CameraRegistry (cameras added from the app)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-camreg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps passwords sealed, and leaves out (and reports) a stored camera that no longer validates', async () => {
    const identity = await generateX25519Identity();
    const db = openDatabase(dir);
    const registry = new CameraRegistry(db, identity);
    const sealed = await encryptToBuffer([await identityToRecipient(identity)], Buffer.from('pw-123'));
    registry.put(cameraSchema.parse({ id: 'porch', source: 'rtsp://10.0.0.5/videoMain' }), sealed);
    registry.put(cameraSchema.parse({ id: 'yard', source: 'rtsp://10.0.0.6/videoMain' }), null);
    expect(await registry.password('porch')).toBe('pw-123');
    expect(await registry.password('yard')).toBeUndefined();
    db.prepare("UPDATE control_cameras SET definition = '{not json' WHERE camera_id = 'yard'").run();
    const problems: string[] = [];
    expect(registry.list((id, reason) => problems.push(`${id}: ${reason}`)).map((c) => c.id)).toEqual(['porch']);
    expect(problems).toEqual(['yard: its stored definition is not JSON']);
    db.close();
  });
});
