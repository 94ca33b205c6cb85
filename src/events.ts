import { EventEmitter } from 'node:events';
import type { Box } from './analysis/box.js';
import type { ConsentSnapshot } from './policy/read-consent.js';
import type { ObjectLabel } from './policy/vocabulary.js';
import type { ClipSummary } from './recording/sink.js';

/**
 * The one map from event name to payload type. Modules talk through this bus; a module that listens
 * removes its listeners when it stops (use the function `on` returns).
 */
export interface CamveilEvents {
  'camera.state': { cameraId: string; health: CameraHealth; error?: { code: string; message: string } };
  /** `mediaMs`: the media time of the first frame with motion (see AnalysisFrame.mediaMs), when known. */
  'motion.start': { cameraId: string; at: number; score: number; mediaMs?: number };
  'motion.end': { cameraId: string; at: number };
  'clip.ready': { cameraId: string; eventId: string; startedAt: number; durationMs: number; bytes: number; endedBy: ClipSummary['endedBy'] };
  'snapshot.ready': { cameraId: string; eventId: string; at: number; bytes: number; width: number; height: number };
  'frames.dropped': { cameraId: string; total: number };
  /** A clip, snapshot or event record was sealed (age) and stored; `bytes` is the ciphertext size. */
  'object.stored': { objectId: string; kind: string; cameraId: string; eventId: string; bytes: number };
  /** Media the gate did not let the hub keep (local recording not consented). */
  'media.refused': { cameraId: string; eventId: string; kind: string; reason: string };
  /** The hub's mode, on start and on every change. */
  'mode.changed': { mode: 'cloud' | 'local-only'; reason: string };
  /**
   * The consent ledger's state, on start and whenever it moves (a grant, withdrawal, policy acceptance,
   * enrolment or erase, here or by another process such as the CLI), after the mode is enforced. `seq` is
   * the ledger's last record (absent when it cannot be read); `mode` the hub's mode now.
   */
  'consent.changed': { consent: ConsentSnapshot; seq?: number; mode: { mode: 'cloud' | 'local-only'; reason: string } };
  /** The set of cameras changed (added, updated or removed by the app, or their settings by `config/set`). */
  'cameras.changed': { cameraIds: readonly string[] };
  /** What became of an upload attempt. */
  'upload.result': { objectId: string; kind: string; bytes: number; ms: number; result: 'uploaded' | 'rejected' | 'retry' | 'aborted'; code?: string };
  /**
   * The upload store's check at the uplink's start (stores that have one: an s3 bucket exists and takes the
   * credentials; leftover multipart uploads removed): `ok`, or the error code and message (naming the bucket,
   * never a credential) while uploads wait for the next check in `retryInMs`; `warning` when the store is usable
   * but its leftovers could not be tidied.
   */
  'uplink.store': { ok: boolean; transport: string; cleaned?: number; warning?: string; code?: string; message?: string; retryInMs?: number };
  /**
   * A tracked object confirmed (seen in 2 of 3 consecutive analysed frames): once per track. `trackId` is a
   * random id, `cocoClass` the model's class name (`car`), `label` its group (`vehicle`), `box` in the
   * analysis frame's pixels, `score` the best so far; `eventId` the motion event open on the camera.
   */
  'object.confirmed': { cameraId: string; trackId: string; label: ObjectLabel; cocoClass: string; score: number; box: Box; at: number; eventId?: string };
  /** A confirmed track was lost (not seen for a while): Home Assistant's sensor for its label may go off. */
  'object.ended': { cameraId: string; trackId: string; label: ObjectLabel; at: number };
  /**
   * An enrolled person, confirmed over several frames; `personId` is the `person_…` pseudonym, never a name.
   * `sightingId` (`sight_…`) names the sighting for corrections; `eventId` the motion event open on the camera.
   */
  'face.known': { cameraId: string; personId: string; at: number; distance: number; sightingId: string; eventId?: string };
  /** A face that matched nobody enrolled, confirmed over several frames (ids as for `face.known`). */
  'face.unknown': { cameraId: string; at: number; sightingId: string; eventId?: string };
  /**
   * A security incident the household must be told of (2021 policy §3.4–3.5): sealed to the household and
   * its paired phones as a `security` event, audited and rate-limited per reason. `detail` is ids and counts
   * only (never a name, a key, a URL or a secret); `cameraId` when it concerns one camera.
   */
  incident: { reason: IncidentReason; detail?: string; cameraId?: string };
}

/** Stable reason codes of security incidents (docs/mqtt-api.md, "Security events"). */
export const INCIDENT_REASONS = [
  'model-tampered',
  'audit-chain-broken',
  'bad-signatures',
  'bad-pairing-proofs',
  'key-file-permissions',
  'unsigned-stop',
  'store-corrupt',
] as const;
export type IncidentReason = (typeof INCIDENT_REASONS)[number];

export type CameraHealth = 'starting' | 'streaming' | 'reconnecting' | 'failed' | 'stopped';

export class EventBus {
  readonly #emitter = new EventEmitter();

  constructor() {
    this.#emitter.setMaxListeners(100);
  }

  emit<K extends keyof CamveilEvents>(name: K, payload: CamveilEvents[K]): void {
    this.#emitter.emit(name, payload);
  }

  /** Subscribes and returns the function that unsubscribes. */
  on<K extends keyof CamveilEvents>(name: K, listener: (payload: CamveilEvents[K]) => void): () => void {
    this.#emitter.on(name, listener);
    return () => this.#emitter.off(name, listener);
  }
}
