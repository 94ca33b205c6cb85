import { describe, expect, it } from 'vitest';
import type { ConsentState } from '../../src/policy/consent-ledger.js';
import { DECISION_REASONS, consentErrorFor, decide, modeOf, type Facts, type Question } from '../../src/policy/decide.js';
import type { PolicyVersion } from '../../src/policy/policy-version.js';
import { rulesFor } from '../../src/policy/region-rules.js';

const p1: PolicyVersion = { version: '1', material: true, publishedAt: '2026-01-01T00:00:00.000Z' };
const p1a: PolicyVersion = { version: '1.1', material: false, publishedAt: '2026-02-01T00:00:00.000Z' };
const p2: PolicyVersion = { version: '2', material: true, publishedAt: '2026-03-01T00:00:00.000Z' };

const allConsent: ConsentState = {
  cloudUpload: true,
  faceRecognition: true,
  crossBorderTransfer: true,
  localRecording: true,
  acceptedPolicyVersion: '1',
  seq: 5,
};

/** A German hub where everything is granted, accepted and capable: each row changes one thing. */
function facts(over: Partial<Omit<Facts, 'consent'>> & { consent?: Partial<ConsentState> | 'unreadable'; regionCode?: string } = {}): Facts {
  const { consent, regionCode, ...rest } = over;
  const region = rulesFor(regionCode ?? 'DE');
  return {
    consent: consent === 'unreadable' ? 'unreadable' : { ...allConsent, ...consent },
    region,
    policy: { inForce: p1a, history: [p1, p1a] },
    mode: { forcedLocalOnly: false },
    camera: { faceRecognitionEnabled: true, faceCapable: true },
    hubZone: region.residencyZone,
    ...rest,
  };
}

const clip: Question = { kind: 'upload', dataKind: 'clip' };
const embedding: Question = { kind: 'upload', dataKind: 'face-embedding' };
const faces: Question = { kind: 'face-recognition', cameraId: 'front' };
const recording: Question = { kind: 'local-recording', cameraId: 'front' };
const alert = (alertKind: 'motion' | 'object' | 'known-face' | 'unknown-face' | 'camera-offline'): Question => ({ kind: 'alert', alertKind });
const objects: Question = { kind: 'object-detection', cameraId: 'front' };
/** A region of the tests' own whose law forbids object detection (no shipped row does). */
const forbidsObjects = (regionCode = 'DE'): Facts['region'] => ({ ...rulesFor(regionCode), objectDetection: 'prohibited' });

describe('decide', () => {
  it.each<[string, Question, Facts, string]>([
    ['clip, all granted', clip, facts(), 'ok'],
    ['clip, ledger unreadable', clip, facts({ consent: 'unreadable' }), 'consent-unreadable'],
    ['clip, forced local-only', clip, facts({ mode: { forcedLocalOnly: true } }), 'local-only-configured'],
    ['clip, material policy not accepted', clip, facts({ policy: { inForce: p2, history: [p1, p1a, p2] } }), 'policy-not-accepted'],
    ['clip, never accepted a policy', clip, facts({ consent: { acceptedPolicyVersion: undefined } }), 'policy-not-accepted'],
    ['clip, malformed policy history', clip, facts({ policy: { inForce: { ...p2, publishedAt: 'x' }, history: [] } }), 'policy-invalid'],
    ['clip, cloud upload withdrawn', clip, facts({ consent: { cloudUpload: false } }), 'cloud-upload-withdrawn'],
    ['clip to us from DE, with transfer consent', { ...clip, zone: 'us' }, facts(), 'ok'],
    ['clip to us from DE, no transfer consent', { ...clip, zone: 'us' }, facts({ consent: { crossBorderTransfer: false } }), 'cross-border-consent-missing'],
    ['clip to global from US-IL: law allows, our promise asks', { ...clip, zone: 'global' }, facts({ regionCode: 'US-IL', consent: { crossBorderTransfer: false } }), 'cross-border-consent-missing'],
    ['clip to eu from CN', { ...clip, zone: 'eu' }, facts({ regionCode: 'CN' }), 'cross-border-forbidden'],
    ['clip to cn from CN', { ...clip, zone: 'cn' }, facts({ regionCode: 'CN' }), 'ok'],
    ['clip to an unknown zone', { ...clip, zone: 'mars' }, facts(), 'unknown-zone'],
    ['clip, hub zone disagrees with region', clip, facts({ hubZone: 'us', consent: { crossBorderTransfer: false } }), 'cross-border-consent-missing'],
    ['clip from an unknown region to global', clip, facts({ regionCode: 'JP' }), 'ok'],
    ['clip from an unknown region to eu', { ...clip, zone: 'eu' }, facts({ regionCode: 'JP' }), 'cross-border-forbidden'],
    ['embedding, all granted', embedding, facts(), 'ok'],
    ['embedding, no face consent', embedding, facts({ consent: { faceRecognition: false } }), 'face-consent-missing'],
    ['album, no face consent', { kind: 'upload', dataKind: 'face-album' }, facts({ consent: { faceRecognition: false } }), 'face-consent-missing'],
    ['embedding, region prohibits', embedding, facts({ regionCode: 'XX' }), 'region-prohibits-face-recognition'],
    ['snapshot, no face consent', { kind: 'upload', dataKind: 'snapshot' }, facts({ consent: { faceRecognition: false } }), 'ok'],
    ['export, cloud upload withdrawn', { kind: 'upload', dataKind: 'export' }, facts({ consent: { cloudUpload: false } }), 'cloud-upload-withdrawn'],
    ['faces, all granted', faces, facts(), 'ok'],
    ['faces, Illinois with consent', faces, facts({ regionCode: 'US-IL' }), 'ok'],
    ['faces, unreadable', faces, facts({ consent: 'unreadable' }), 'consent-unreadable'],
    ['faces, unknown region', faces, facts({ regionCode: 'ZZ' }), 'region-prohibits-face-recognition'],
    ['faces, policy not accepted', faces, facts({ policy: { inForce: p2, history: [p1, p1a] } }), 'policy-not-accepted'],
    ['faces, camera unknown', faces, facts({ camera: undefined }), 'camera-unknown'],
    ['faces, device not capable', faces, facts({ camera: { faceCapable: false, faceRecognitionEnabled: true } }), 'device-not-capable'],
    ['faces, camera switch off', faces, facts({ camera: { faceCapable: true, faceRecognitionEnabled: false } }), 'camera-face-off'],
    ['faces, no consent', faces, facts({ consent: { faceRecognition: false } }), 'face-consent-missing'],
    ['faces, local-only and no cloud consent: still on the hub', faces, facts({ mode: { forcedLocalOnly: true }, consent: { cloudUpload: false } }), 'ok'],
    ['recording, granted', recording, facts({ consent: { cloudUpload: false }, policy: { inForce: p2, history: [] } }), 'ok'],
    ['recording, withdrawn', recording, facts({ consent: { localRecording: false } }), 'local-recording-withdrawn'],
    ['recording, unreadable', recording, facts({ consent: 'unreadable' }), 'consent-unreadable'],
    ['motion alert, nothing granted', alert('motion'), facts({ consent: { cloudUpload: false, faceRecognition: false } }), 'ok'],
    ['offline alert, unreadable ledger', alert('camera-offline'), facts({ consent: 'unreadable' }), 'ok'],
    ['known-face alert, no face consent', alert('known-face'), facts({ consent: { faceRecognition: false } }), 'face-consent-missing'],
    ['unknown-face alert, region prohibits', alert('unknown-face'), facts({ regionCode: 'BR' }), 'region-prohibits-face-recognition'],
    ['known-face alert, all granted, no cloud', alert('known-face'), facts({ consent: { cloudUpload: false } }), 'ok'],
    ['objects, all granted', objects, facts(), 'ok'],
    ['objects, nothing granted, no policy accepted', objects, facts({ consent: { cloudUpload: false, faceRecognition: false, crossBorderTransfer: false, localRecording: false, acceptedPolicyVersion: undefined } }), 'ok'],
    ['objects, unreadable ledger', objects, facts({ consent: 'unreadable' }), 'ok'],
    ['objects, unknown region (strictest rule)', objects, facts({ regionCode: 'ZZ' }), 'ok'],
    ['objects, forced local-only', objects, facts({ mode: { forcedLocalOnly: true } }), 'ok'],
    ['objects, camera unknown', objects, facts({ camera: undefined }), 'ok'],
    ['objects, region prohibits', objects, facts({ region: forbidsObjects() }), 'region-prohibits-object-detection'],
    ['objects, region prohibits, unreadable ledger', objects, facts({ region: forbidsObjects(), consent: 'unreadable' }), 'region-prohibits-object-detection'],
    ['object alert, nothing granted', alert('object'), facts({ consent: { cloudUpload: false, faceRecognition: false } }), 'ok'],
    ['object alert, region prohibits object detection', alert('object'), facts({ region: forbidsObjects() }), 'region-prohibits-object-detection'],
    ['motion alert, region prohibits object detection', alert('motion'), facts({ region: forbidsObjects() }), 'ok'],
    ['faces, region prohibits object detection only', faces, facts({ region: forbidsObjects() }), 'ok'],
  ])('%s → %s', (_name, question, f, reason) => {
    const d = decide(question, f);
    expect(d).toEqual({ allowed: reason === 'ok', reason });
    expect(DECISION_REASONS).toContain(d.reason);
  });
});

describe('modeOf', () => {
  it.each<[string, Facts, 'cloud' | 'local-only', string]>([
    ['all granted', facts(), 'cloud', 'ok'],
    ['unreadable', facts({ consent: 'unreadable' }), 'local-only', 'consent-unreadable'],
    ['forced', facts({ mode: { forcedLocalOnly: true } }), 'local-only', 'local-only-configured'],
    ['material policy pending', facts({ policy: { inForce: p2, history: [p1] } }), 'local-only', 'policy-not-accepted'],
    ['non-material policy pending', facts({ consent: { acceptedPolicyVersion: '1' }, policy: { inForce: p1a, history: [p1] } }), 'cloud', 'ok'],
    ['cloud upload never granted', facts({ consent: { cloudUpload: false } }), 'local-only', 'cloud-upload-withdrawn'],
  ])('%s → %s (%s)', (_name, f, mode, reason) => {
    expect(modeOf(f)).toEqual({ mode, reason });
  });
});

describe('consentErrorFor', () => {
  it('maps consent denials to codes and leaves the rest alone', () => {
    expect(consentErrorFor({ allowed: false, reason: 'consent-unreadable' })?.code).toBe('CAMVEIL_E_CONSENT_UNREADABLE');
    expect(consentErrorFor({ allowed: false, reason: 'face-consent-missing' })?.code).toBe('CAMVEIL_E_CONSENT_REQUIRED');
    expect(consentErrorFor({ allowed: false, reason: 'region-prohibits-face-recognition' })).toBeUndefined();
    expect(consentErrorFor({ allowed: false, reason: 'region-prohibits-object-detection' })).toBeUndefined();
    expect(consentErrorFor({ allowed: true, reason: 'ok' })).toBeUndefined();
  });
});
