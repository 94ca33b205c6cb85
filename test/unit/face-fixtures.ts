import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path, { dirname, join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { AuditLog } from '../../src/audit/audit-log.js';
import type { Face } from '../../src/analysis/faces/face-engine.js';
import { readImageFile } from '../../src/analysis/faces/image-input.js';
import type { AnalysisFrame } from '../../src/cameras/frame.js';
import { ConsentLedger, LOCAL_OPERATOR } from '../../src/policy/consent-ledger.js';
import { PolicyGate } from '../../src/policy/gate.js';
import { SHIPPED_POLICY_VERSIONS } from '../../src/policy/policy-history.js';
import { openDatabase } from '../../src/store/database.js';

/** The photos npm installs with face-api: sample1.jpg three women side by side, sample5.jpg five on a staircase. */
export const DEMO = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');

/** A demo photo (or any sharp pipeline) as a 640×360 RGB24 analysis frame, letterboxed so faces keep their shape. */
export async function frameOf(input: string | Sharp, cameraId = 'front', at = Date.now(), seq = 0): Promise<AnalysisFrame> {
  const pipeline = typeof input === 'string' ? sharp(input) : input;
  const { data, info } = await pipeline
    .resize(640, 360, { fit: 'contain', background: { r: 0, g: 0, b: 0 } })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { cameraId, at, seq, width: info.width, height: info.height, data };
}

const ACTOR = { actor: LOCAL_OPERATOR, requestDigest: 'a'.repeat(64) };

/**
 * A hub database with a real ledger, and a gate whose region and camera switch tests can change at run
 * time (a real PolicyGate is built per question from the current values).
 */
export function testHub(initial: { region?: string; faceOn?: boolean; capable?: boolean } = {}) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-faces-hub-'));
  const db = openDatabase(dataDir);
  const audit = new AuditLog(db);
  const ledger = new ConsentLedger(db);
  const inForce = SHIPPED_POLICY_VERSIONS.at(-1)!;
  const state = { region: initial.region ?? 'DE', faceOn: initial.faceOn ?? true, capable: initial.capable ?? true };
  const gateFor = () =>
    new PolicyGate({
      ledger,
      region: state.region,
      policy: { inForce, history: SHIPPED_POLICY_VERSIONS },
      forcedLocalOnly: false,
      cameras: () => new Map([['front', { faceRecognitionEnabled: state.faceOn, faceCapable: state.capable }], ['back', { faceRecognitionEnabled: false, faceCapable: true }]]),
      cameraPseudonym: () => 'cam_aaaaaaaaaaaaaaaa',
    });
  const gate = { mayRecogniseFaces: (id: string) => gateFor().mayRecogniseFaces(id) };
  return {
    dataDir,
    db,
    audit,
    ledger,
    state,
    gate,
    policyVersion: inForce.version,
    acceptAndGrant(): void {
      ledger.acceptPolicy(inForce.version, ACTOR);
      ledger.grant('faceRecognition', { ...ACTOR, policyVersion: inForce.version });
    },
    withdraw(): void {
      ledger.withdraw('faceRecognition', { ...ACTOR, policyVersion: inForce.version });
    },
    close(): void {
      db.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A crop of sample1.jpg around one face, with `margin` × the face size on every side. */
export async function cropOf(face: Face, file: string, margin = 0.6): Promise<void> {
  const image = await readImageFile(join(DEMO, 'sample1.jpg'));
  const left = Math.max(0, Math.round(face.box.x - margin * face.box.width));
  const top = Math.max(0, Math.round(face.box.y - margin * face.box.height));
  const right = Math.min(image.width, Math.round(face.box.x + (1 + margin) * face.box.width));
  const bottom = Math.min(image.height, Math.round(face.box.y + (1 + margin) * face.box.height));
  await sharp(join(DEMO, 'sample1.jpg')).extract({ left, top, width: right - left, height: bottom - top }).jpeg().toFile(file);
}

