import type { FaceStageStats } from './analysis/faces/face-stage.js';
import type { ObjectAnalyserStats } from './analysis/objects/object-analyser.js';
import type { SignedAuditHead } from './audit/audit-anchor.js';
import type { CameraStatus } from './cameras/camera-pipeline.js';
import type { Config } from './config/schema.js';
import type { DetectionCountsState } from './control/detection-counts.js';
import type { ErrorCode } from './errors.js';
import type { PolicyGate } from './policy/gate.js';
import type { RetentionReport } from './store/retention.js';
import type { OutboxStats } from './uplink/outbox.js';
import type { StoreStatus } from './uplink/uplink-service.js';

/** What the hub reports about itself (`camveil run`'s state, the sealed MQTT state): health and counters, no secrets and no personal data. */
export interface GatewayState {
  hub: string;
  region: string;
  ffmpeg: { origin: 'system' | 'npm'; major: number };
  /** Where media goes: `memory-only` when no household recipients are configured (nothing can be encrypted). */
  media: 'sealed' | 'memory-only' | 'custom';
  /** The face stage: model backend while loaded, calls, frames gated out and dropped (counts only). */
  faces?: FaceStageStats & { disabledReason?: ErrorCode };
  /** The objects analyser: model backend while loaded, calls, frames analysed and dropped, confirmed objects by label (counts only). */
  objects?: ObjectAnalyserStats & { disabledReason?: string };
  /** Clips of cameras with bystanderBlurClips: re-encoded with bystanders pixelated, passed on as recorded (none seen), withheld (blurring failed). */
  clipBlur?: { blurred: number; unchanged: number; withheld: number };
  /** The MQTT protocol in use with the broker: 5 where it supports it, 3.1.1 (4) otherwise. */
  mqtt?: { protocolVersion: 4 | 5 };
  /** `cloud` or `local-only`, and why (a machine-readable reason from the gate). */
  mode: { mode: 'cloud' | 'local-only'; reason: string };
  policyVersion: string;
  storage?: { objects: number; bytes: number; quotaBytes: number; retentionDays: number; lastRetention?: RetentionReport };
  /** The residency zone, the outbox's counts and whether the remote store passed its check at start (uploads wait while it has not). */
  uplink?: { zone: string; outbox: OutboxStats; store?: StoreStatus };
  cameras: Array<
    CameraStatus & {
      features: {
        motion: boolean;
        faceRecognition: { allowed: boolean; reason: string };
        localRecording: { allowed: boolean; reason: string };
        objectDetection: { allowed: boolean; reason: string };
      };
    }
  >;
  /** The audit log's head, signed by the hub now: the app remembers the highest it saw and reports a rollback. */
  audit?: SignedAuditHead;
  /**
   * Objects confirmed since the start, per camera pseudonym and label, with the last one's time. Sealed
   * like the rest of this state; never in the clear health (the broker must not learn what a camera sees).
   */
  detections?: DetectionCountsState;
}

/** What each service reports, read when the state is asked for; undefined parts are left out. */
export interface HubStateParts {
  config: Config;
  hub: string;
  ffmpeg: GatewayState['ffmpeg'] | undefined;
  media: GatewayState['media'] | undefined;
  mode: GatewayState['mode'] | undefined;
  protocolVersion: 4 | 5 | undefined;
  faces: GatewayState['faces'] | undefined;
  objects?: GatewayState['objects'] | undefined;
  clipBlur: GatewayState['clipBlur'] | undefined;
  cameras: readonly CameraStatus[];
  gate: PolicyGate | undefined;
  storage: GatewayState['storage'] | undefined;
  uplink: GatewayState['uplink'] | undefined;
  audit: SignedAuditHead | undefined;
  detections?: DetectionCountsState | undefined;
}

const NOT_STARTED = { allowed: false, reason: 'not-started' } as const;

/** Puts the services' reports together, with each camera's features as the gate answers them now (and why not). */
export function hubState(parts: HubStateParts): GatewayState {
  const { config, gate } = parts;
  return {
    hub: parts.hub,
    region: config.hub.region,
    ffmpeg: parts.ffmpeg ?? { origin: 'system', major: 0 },
    media: parts.media ?? 'memory-only',
    mode: parts.mode ?? { mode: 'local-only', reason: 'not-started' },
    ...(parts.protocolVersion === undefined ? {} : { mqtt: { protocolVersion: parts.protocolVersion } }),
    ...(parts.faces === undefined ? {} : { faces: parts.faces }),
    ...(parts.objects === undefined ? {} : { objects: parts.objects }),
    ...(parts.clipBlur === undefined ? {} : { clipBlur: parts.clipBlur }),
    policyVersion: config.privacy.policyVersion,
    cameras: parts.cameras.map((status) => ({
      ...status,
      features: {
        motion: status.motion.enabled,
        faceRecognition: gate?.mayRecogniseFaces(status.cameraId) ?? NOT_STARTED,
        localRecording: gate?.mayRecordLocally(status.cameraId) ?? NOT_STARTED,
        objectDetection: gate?.mayDetectObjects(status.cameraId) ?? NOT_STARTED,
      },
    })),
    ...(parts.storage === undefined ? {} : { storage: parts.storage }),
    ...(parts.uplink === undefined ? {} : { uplink: parts.uplink }),
    ...(parts.audit === undefined ? {} : { audit: parts.audit }),
    ...(parts.detections === undefined ? {} : { detections: parts.detections }),
  };
}
