import { z } from 'zod';

/**
 * The hub's shared words, each list written once: types, zod enums and checks elsewhere derive from these.
 * A leaf module (zod only), so config, crypto, store, audit and policy can all import it without cycles.
 *
 * SQL CHECK constraints cannot derive from here: migration steps are append-only text that has shipped.
 * test/unit/vocabulary.test.ts checks each table's CHECK against its list instead, so a word added here
 * without a migration fails there.
 */

/** What a sealed object's body is: the manifest's `kind`, the store's `kind` column, the gate's data kind. */
export const OBJECT_KINDS = ['clip', 'snapshot', 'face-embedding', 'export', 'event', 'face-album'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];
export const objectKindSchema = z.enum(OBJECT_KINDS);

/**
 * Kinds that come from one camera and so name it. A face album gathers one person's sightings on every
 * camera; an export or a template belongs to no camera: those leave `cameraPseudonym` out.
 */
export const CAMERA_OBJECT_KINDS: readonly ObjectKind[] = ['clip', 'snapshot', 'event'];

/** Alerts the hub seals to the household's phones; each one asks the gate first (decide.ts). */
export const ALERT_KINDS = ['motion', 'object', 'known-face', 'unknown-face', 'camera-offline'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** Data-residency zones: the region rules pick one, and it picks the upload endpoint. */
export const RESIDENCY_ZONES = ['eu', 'us', 'cn', 'global'] as const;
export type ResidencyZone = (typeof RESIDENCY_ZONES)[number];
export const residencyZoneSchema = z.enum(RESIDENCY_ZONES);

/** The consents a household can give; each is off until granted (GDPR Art. 7, PIPL Art. 14: opt-in). */
export const CONSENT_NAMES = ['cloudUpload', 'faceRecognition', 'crossBorderTransfer', 'localRecording'] as const;
export type ConsentName = (typeof CONSENT_NAMES)[number];
export const consentNameSchema = z.enum(CONSENT_NAMES);

/**
 * What the objects analyser reports, by group: each label stands for a set of COCO classes
 * (analysis/objects/object-classes.ts). In priority order: an event's snapshot shows its best object of
 * the first label present (a person before an animal before a vehicle).
 */
export const OBJECT_LABELS = ['person', 'animal', 'vehicle'] as const;
export type ObjectLabel = (typeof OBJECT_LABELS)[number];
export const objectLabelSchema = z.enum(OBJECT_LABELS);
