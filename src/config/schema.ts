import { z } from 'zod';
import {
  DEFAULT_MIN_SCORE,
  DEFAULT_TRACK,
  classesOf,
  isTrackName,
  resolveTrack,
  trackNameSchema,
  unknownTrackNameMessage,
} from '../analysis/objects/object-classes.js';
import { recipientsSchema } from '../crypto/recipients.js';
import { bucketNameSchema, keyPrefixSchema, regionSchema } from '../s3/s3-names.js';
import { knownPolicyVersions } from '../policy/policy-history.js';
import { rulesFor } from '../policy/region-rules.js';
import { objectLabelSchema, residencyZoneSchema } from '../policy/vocabulary.js';
import { isLoopbackHost } from '../uplink/endpoint.js';

/**
 * The configuration file's schema. Every object is strict: an unknown key is an error, so a typo never
 * silently turns a privacy setting off. Defaults here are the ones docs/configuration.md documents.
 */

/** ISO 3166-1 alpha-2 (`DE`) or ISO 3166-2 subdivision (`US-IL`, `CN-GD`). */
export const regionCode = z
  .string()
  .regex(/^[A-Z]{2}(-[A-Z0-9]{1,3})?$/, 'must be an ISO 3166-1 alpha-2 code (DE) or an ISO 3166-2 code (US-IL)');

/** Identifiers appear in MQTT topics and file names: keep them to a safe alphabet. */
export const identifier = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1-63 characters of a-z, 0-9, "-" or "_", starting with a letter or digit');

/** A point in normalised frame coordinates: (0,0) top-left, (1,1) bottom-right. */
const point = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]);
/** A polygon of at least three points in normalised coordinates. */
export const polygon = z.array(point).min(3, 'a polygon needs at least 3 points');

const PLAIN_PASSWORD_HINT =
  'plain passwords are not allowed in the config file: write the password to a file readable only by camveil ' +
  '(chmod 600) and set credentials.passwordFile, or set credentials.passwordEnv to the name of an environment variable';

export const credentialsSchema = z
  .strictObject({
    username: z.string().min(1).max(128),
    passwordFile: z.string().min(1).optional().describe('file whose first line is the password'),
    passwordEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name')
      .optional()
      .describe('environment variable holding the password'),
    sendToStreamHost: z
      .boolean()
      .optional()
      .describe('ONVIF only: also send the credentials when the device names a stream on another host (off: they go to the device\'s own host only)'),
    password: z.unknown().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.password !== undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: PLAIN_PASSWORD_HINT });
    if (c.passwordFile !== undefined && c.passwordEnv !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['passwordFile'], message: 'set passwordFile or passwordEnv, not both' });
    }
  })
  .transform(({ password: _password, ...rest }) => rest);

const SOURCE_SCHEMES = ['rtsp:', 'rtsps:', 'http:', 'https:', 'onvif:', 'file:'];

/**
 * A camera source: `rtsp://host[:port]/path`, an ONVIF device service URL
 * (`http://host:port/onvif/device_service`), `onvif://host[:port]` (Foscam: port 88 by default),
 * or `file:path/to/video.mp4` looped in real time.
 */
export const sourceSchema = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a URL: rtsp://…, http://host:port/onvif/device_service, onvif://host or file:path' });
    return;
  }
  if (!SOURCE_SCHEMES.includes(url.protocol)) {
    ctx.addIssue({ code: 'custom', message: `scheme ${url.protocol} is not supported (use rtsp:, rtsps:, http:, https:, onvif: or file:)` });
  }
  if (url.password !== '') ctx.addIssue({ code: 'custom', message: `the URL holds a password; ${PLAIN_PASSWORD_HINT}` });
  else if (url.username !== '') ctx.addIssue({ code: 'custom', message: 'the URL holds a user name: move it to credentials.username' });
  if (/[?&](pwd|password|pass)=/i.test(url.search)) {
    ctx.addIssue({ code: 'custom', message: `the URL query holds a password; ${PLAIN_PASSWORD_HINT}` });
  }
});

export const analysisSchema = z.strictObject({
  fps: z.number().min(0.2).max(15).default(2).describe('frames per second decoded for analysis'),
  width: z.number().int().min(64).max(1920).multipleOf(2).default(640).describe('analysis frame width in pixels'),
  height: z.number().int().min(64).max(1080).multipleOf(2).default(360).describe('analysis frame height in pixels'),
});

export const motionSchema = z.strictObject({
  enabled: z.boolean().default(true),
  sensitivity: z.number().min(0).max(1).default(0.5).describe('0 = only large, strong changes; 1 = the faintest'),
  minArea: z.number().min(0).max(1).default(0.005).describe('smallest changed fraction of the watched area that counts as motion'),
  zones: z.array(polygon).default([]).describe('where to look; empty = the whole frame'),
});

/**
 * What the objects analyser looks for on a camera (analysis/objects/). Names in `track` and the keys of
 * `zones` are the group labels (`person`, `animal`, `vehicle`) or COCO classes of those groups (`car`);
 * anything else is refused with the list of valid names.
 */
export const objectsSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('detect people, animals and vehicles in frames with motion (only where the region rules allow it)'),
    track: z
      .array(trackNameSchema)
      .min(1, 'name at least one class to track (to track nothing, set objects.enabled to false)')
      .default([...DEFAULT_TRACK])
      .describe('the groups (person, animal, vehicle) or COCO classes of those groups (car, dog, …) reported'),
    minScore: z.number().min(0).max(1).default(DEFAULT_MIN_SCORE).describe("the model's confidence below which a detection is dropped"),
    minArea: z
      .number()
      .min(0)
      .max(1)
      .default(0.0005)
      .describe("smallest box, as a fraction of the frame's area, that counts (0.0005 is about 11×11 px at 640×360)"),
    zones: z
      .record(z.string(), z.array(polygon).min(1, 'give at least one polygon (leave the name out to count it anywhere)'))
      .default({})
      .describe('per tracked label or class: where an object of it counts (the bottom centre of its box inside a polygon); absent: anywhere'),
  })
  .superRefine((o, ctx) => {
    const tracked = resolveTrack(o.track);
    for (const name of Object.keys(o.zones)) {
      if (!isTrackName(name)) {
        ctx.addIssue({ code: 'custom', path: ['zones', name], message: unknownTrackNameMessage(name) });
      } else if (!classesOf(name).some((cocoClass) => tracked.has(cocoClass))) {
        ctx.addIssue({ code: 'custom', path: ['zones', name], message: `"${name}" is not tracked: add it to objects.track (now ${o.track.join(', ')})` });
      }
    }
  });

/** Which of a camera's events raise an alert on the household's phones. */
export const alertsSchema = z.strictObject({
  onlyFor: z
    .array(objectLabelSchema)
    .default([])
    .describe('alert only for events with objects of these labels (others are still recorded and uploaded); empty: every event alerts'),
});

export const cameraSchema = z.strictObject({
  id: identifier,
  name: z.string().max(64).optional().describe('display name for the app; not personal data'),
  enabled: z.boolean().default(true),
  source: sourceSchema,
  subSource: sourceSchema.optional().describe('a lower-resolution stream for analysis (Foscam: /videoSub)'),
  credentials: credentialsSchema.optional(),
  analysis: analysisSchema.prefault({}),
  motion: motionSchema.prefault({}),
  privacyMasks: z.array(polygon).default([]).describe('areas painted over before analysis and on everything that leaves the hub'),
  faceRecognition: z
    .boolean()
    .default(false)
    .describe('the household switches face recognition on per camera; it then runs only where region, device model and consent allow'),
  bystanderBlur: z
    .boolean()
    .default(false)
    .describe('pixelate faces of people not enrolled in the snapshots that leave the hub; only while face recognition is allowed for the camera'),
  bystanderBlurClips: z
    .boolean()
    .default(false)
    .describe('the same for clips: a clip in which a bystander was seen is re-encoded when it ends (CPU cost in docs/faces.md); only while face recognition is allowed for the camera'),
  objects: objectsSchema.prefault({}),
  alerts: alertsSchema.prefault({}),
}).superRefine((camera, ctx) => {
  for (const message of onlyForProblems(camera)) ctx.addIssue({ code: 'custom', path: ['alerts', 'onlyFor'], message });
});

export const recordingSchema = z
  .strictObject({
    preRollSeconds: z.number().min(0).max(30).default(5),
    postRollSeconds: z.number().min(1).max(120).default(10),
    maxClipSeconds: z.number().min(5).max(600).default(120),
    memoryCeilingMiB: z.number().int().min(8).max(1024).default(64).describe('per camera: ring buffer plus clips being assembled'),
  })
  .refine((r) => r.maxClipSeconds > r.preRollSeconds, { path: ['maxClipSeconds'], message: 'must be longer than preRollSeconds' });

export const householdSchema = z.strictObject({
  recipients: recipientsSchema.describe(
    "the household's age recipients (age1… X25519 or age1pq1… ML-KEM-768+X25519 hybrid), one per family phone: every stored or uploaded object is encrypted to all of them",
  ),
});

export const storageSchema = z.strictObject({
  retentionDays: z.number().min(1).max(3650).default(30).describe('local encrypted objects older than this are deleted'),
  quotaMiB: z.number().int().min(16).max(16 * 1024 * 1024).default(2048).describe('disk space for local encrypted objects; the oldest go first'),
  reserveMiB: z.number().int().min(0).max(1024 * 1024).default(256).describe('disk space always left free: the quota is capped at what the store holds plus the free space less this reserve'),
});

/** Today's cloud receiver protocol (src/receiver/server.ts), with the bearer token of `uplink.tokenFile`. */
export const httpEndpointSchema = z.strictObject({
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/, error: 'must be an https:// URL (http:// only to loopback)' }).describe('base URL of the cloud receiver'),
});

/** An S3-compatible bucket (src/uplink/s3-object-store.ts): objects go to `<prefix>/<hub pseudonym>/<object id>.age`. */
export const s3EndpointSchema = z
  .strictObject({
    type: z.literal('s3'),
    endpoint: z
      .url({ protocol: /^https?$/, error: 'must be an https:// URL (http:// only to loopback)' })
      .optional()
      .describe('the S3-compatible service (`https://s3.example.net`); AWS S3 of `region` when absent'),
    region: regionSchema
      .describe("the bucket's region (signing region; `us-east-1` for most self-hosted stores, `auto` for R2)"),
    bucket: bucketNameSchema.describe('the bucket (it must exist: the hub does not create it)'),
    prefix: keyPrefixSchema
      .optional()
      .describe('keys start with `<prefix>/`; none when absent'),
    forcePathStyle: z.boolean().default(false).describe('path-style addressing (`<endpoint>/<bucket>/<key>`), which most self-hosted stores need'),
    credentialsFile: z.string().min(1).describe('YAML or JSON file with accessKeyId and secretAccessKey (and sessionToken for temporary credentials), chmod 600'),
  })
  .superRefine((e, ctx) => {
    if (e.endpoint === undefined) return;
    const u = new URL(e.endpoint);
    if (u.username !== '' || u.password !== '') ctx.addIssue({ code: 'custom', path: ['endpoint'], message: 'must not carry credentials (they go in credentialsFile)' });
    if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) ctx.addIssue({ code: 'custom', path: ['endpoint'], message: 'must be https:// (plain http:// is allowed only to loopback)' });
    if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
      ctx.addIssue({ code: 'custom', path: ['endpoint'], message: 'must be the service origin alone (`https://host[:port]`): the bucket and prefix have their own fields' });
    }
  });

/**
 * One zone's upload endpoint, told apart by `type` (each type is a RemoteObjectStore: src/uplink/). A bare
 * URL string, or an object without `type`, is an `http` endpoint: configs written before endpoints had a
 * type keep working unchanged.
 */
export const endpointSchema = z.preprocess(
  (value) => {
    if (typeof value === 'string') return { type: 'http', url: value };
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !('type' in value)) return { type: 'http', ...value };
    return value;
  },
  z.discriminatedUnion('type', [httpEndpointSchema, s3EndpointSchema], {
    error: (issue) => (issue.code === 'invalid_union' ? 'type must be http (the cloud receiver protocol) or s3 (an S3-compatible bucket)' : undefined),
  }),
);

export const uplinkSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('upload encrypted objects to the cloud'),
  endpoints: z
    .partialRecord(residencyZoneSchema, endpointSchema)
    .default({})
    .describe('the upload endpoint per residency zone: `{type: http, url}`, the receiver\'s base URL alone (type http), or `{type: s3, region, bucket, credentialsFile, …}`'),
  tokenFile: z.string().min(1).optional().describe('file holding the bearer token for the cloud receiver (chmod 600); needed by http endpoints only'),
  timeoutSeconds: z.number().min(1).max(600).default(60).describe('per upload request'),
  bandwidthKiBps: z.number().int().min(8).optional().describe('cap on upload bandwidth; unlimited when absent'),
});

const policyVersionSchema = z.strictObject({
  version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be a short version label such as 2021-10-31'),
  material: z.boolean().describe('a material change must be accepted again before data flows'),
  publishedAt: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time' }),
});

export const privacySchema = z.strictObject({
  policyVersion: z.string().min(1).default('2021-10-31').describe('the privacy-policy version in force (shipped versions, or one listed in policyHistory)'),
  policyHistory: z.array(policyVersionSchema).default([]).describe('policy versions published after this release, added by the household or a signed update'),
  localOnly: z.boolean().default(false).describe('never upload, whatever the consents say'),
  faceCapableModels: z
    .array(z.strictObject({ manufacturer: z.string().min(1), model: z.string().min(1).describe("exact, or a prefix glob such as 'FI99*'") }))
    .optional()
    .describe('device models on which face recognition may run; the shipped list when absent'),
  faceCapableOverride: z.boolean().default(false).describe('the household declares its unlisted cameras capable'),
});

/** Hub-wide face settings; whether faces run at all is per camera, per consent and per region. */
export const faceRecognitionSchema = z.strictObject({
  albumEmbeddings: z
    .boolean()
    .default(false)
    .describe("the household opts in to the face templates travelling in each person's sealed face album (also needs what face-embedding uploads need)"),
  albumMaxSightings: z.number().int().min(1).max(10_000).default(200).describe("sightings kept per person in the face album; the oldest go first"),
  albumIntervalSeconds: z.number().min(1).max(86_400).default(30).describe("a person's face album is sealed and queued at most once per this interval"),
  sightingRetentionDays: z
    .number()
    .min(1)
    .max(365)
    .default(7)
    .describe('confirmed sightings (ids, camera, time; who, event and face descriptor sealed) are kept this long so the household can correct them, then deleted'),
  onlyWithMotion: z
    .boolean()
    .default(true)
    .describe('look for faces only in analysed frames with motion (a still scene holds no new face); false looks at every analysed frame'),
});

export const mqttSchema = z.strictObject({
  url: z.string().regex(/^(mqtts?|wss?):\/\/[^/@\s]+(:\d+)?\/?$/, 'must be mqtt://host[:port], mqtts://…, ws://… or wss://…, without credentials'),
  baseTopic: z.string().regex(/^[a-z0-9_-]+(\/[a-z0-9_-]+)*$/, 'must be topic levels of a-z, 0-9, "-", "_"').default('camveil'),
  caFile: z.string().min(1).optional().describe('CA certificate for mqtts://'),
  certFile: z.string().min(1).optional().describe('client certificate'),
  keyFile: z.string().min(1).optional().describe('client key'),
  username: z.string().min(1).max(128).optional(),
  passwordFile: z.string().min(1).optional().describe('file holding the broker password'),
  embeddedBroker: z.boolean().default(false).describe('start a broker inside the hub on the URL\'s loopback address (demo); never otherwise'),
  coverTraffic: z
    .strictObject({
      enabled: z.boolean().default(false),
      perMinute: z.number().min(0.1).max(60).default(2).describe('dummy events per minute on average (jittered)'),
    })
    .prefault({})
    .describe('sealed dummy events on the event topic, so their timing does not tell the broker when something happened (opt-in)'),
});

/**
 * Home Assistant MQTT discovery (opt-in, for a broker on the household's own network): retained entity
 * configs under `<prefix>/…/config` for each camera's motion and last event, and the hub's upload mode.
 * Read-only: nothing published there can turn a data flow on.
 */
export const homeAssistantSchema = z.strictObject({
  discovery: z.boolean().default(false).describe('publish Home Assistant discovery configs on the control broker'),
  prefix: z
    .string()
    .regex(/^[a-z0-9_-]+(\/[a-z0-9_-]+)*$/, 'must be topic levels of a-z, 0-9, "-", "_"')
    .default('homeassistant')
    .describe("Home Assistant's discovery prefix; its birth message is expected on <prefix>/status"),
});

export const configSchema = z
  .strictObject({
    hub: z.strictObject({
      id: identifier.describe('names the hub in MQTT topics; appears outside the hub only as a pseudonym'),
      region: regionCode.describe('where the hub is installed; selects the region rules'),
    }),
    dataDir: z.string().min(1).default('/var/lib/camveil'),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
    cameras: z.array(cameraSchema).default([]),
    recording: recordingSchema.prefault({}),
    household: householdSchema
      .optional()
      .describe('without household recipients nothing can be encrypted, so nothing is stored or uploaded: clips stay in memory'),
    storage: storageSchema.prefault({}),
    uplink: uplinkSchema.prefault({}),
    privacy: privacySchema.prefault({}),
    mqtt: mqttSchema.optional().describe('the control plane: the phone app configures the hub through this broker'),
    homeAssistant: homeAssistantSchema.prefault({}).describe('Home Assistant MQTT discovery on the control broker (opt-in)'),
    faceRecognition: faceRecognitionSchema.prefault({}).describe('which frames are searched for faces, how long sightings are kept, what face albums hold and how often they are sealed'),
  })
  .superRefine((c, ctx) => {
    if (c.uplink.enabled && c.household === undefined) {
      ctx.addIssue({ code: 'custom', path: ['uplink', 'enabled'], message: 'uploads need household.recipients: the cloud may only receive what the household can decrypt' });
    }
    // The bearer token is the http transport's; an s3 endpoint carries its own credentials file.
    const httpEndpoints = Object.values(c.uplink.endpoints).some((endpoint) => endpoint?.type === 'http');
    if (c.uplink.enabled && c.uplink.tokenFile === undefined && httpEndpoints) {
      ctx.addIssue({ code: 'custom', path: ['uplink', 'tokenFile'], message: 'required when uploads are enabled with an http endpoint' });
    }
    // Data residency: the region rules pick the zone, and uploads go only to that zone's endpoint.
    const zone = rulesFor(c.hub.region).residencyZone;
    if (c.uplink.enabled && c.uplink.endpoints[zone] === undefined) {
      ctx.addIssue({ code: 'custom', path: ['uplink', 'endpoints', zone], message: `region ${c.hub.region} keeps data in the "${zone}" zone: give that zone's endpoint` });
    }
    for (const [name, endpoint] of Object.entries(c.uplink.endpoints)) {
      if (endpoint.type !== 'http') continue;
      const u = new URL(endpoint.url);
      if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) {
        ctx.addIssue({ code: 'custom', path: ['uplink', 'endpoints', name, 'url'], message: 'must be https:// (plain http:// is allowed only to loopback)' });
      }
    }
    if (c.mqtt?.embeddedBroker === true && !/^mqtt:\/\/(127\.\d+\.\d+\.\d+|localhost)(:\d+)?\/?$/.test(c.mqtt.url)) {
      ctx.addIssue({ code: 'custom', path: ['mqtt', 'embeddedBroker'], message: 'an embedded broker listens on loopback only: use mqtt://127.0.0.1:PORT' });
    }
    if (c.homeAssistant.discovery && c.mqtt === undefined) {
      ctx.addIssue({ code: 'custom', path: ['homeAssistant', 'discovery'], message: 'needs mqtt: discovery is published on the control broker' });
    }
    const known = knownPolicyVersions(c.privacy.policyHistory).map((v) => v.version);
    if (!known.includes(c.privacy.policyVersion)) {
      ctx.addIssue({ code: 'custom', path: ['privacy', 'policyVersion'], message: `unknown version; known: ${known.join(', ')} (add new ones to privacy.policyHistory)` });
    }
    const seen = new Set<string>();
    c.cameras.forEach((cam, i) => {
      if (seen.has(cam.id)) ctx.addIssue({ code: 'custom', path: ['cameras', i, 'id'], message: `duplicate camera id "${cam.id}"` });
      seen.add(cam.id);
    });
  });

/**
 * Why a camera's `alerts.onlyFor` could never pass an event, if it could not: it names labels while objects
 * are off, or a label its `objects.track` does not report. Such a camera would record silently, never alerting.
 */
export function onlyForProblems(camera: { objects: ObjectsConfig; alerts: AlertsConfig }): string[] {
  const { onlyFor } = camera.alerts;
  if (onlyFor.length === 0) return [];
  if (!camera.objects.enabled) return ['needs objects.enabled: without object detection no event carries a label, so none would alert'];
  const tracked = resolveTrack(camera.objects.track);
  return onlyFor
    .filter((label) => !classesOf(label).some((cocoClass) => tracked.has(cocoClass)))
    .map((label) => `"${label}" is not in objects.track (${camera.objects.track.join(', ')}): events would never carry it`);
}

export type Config = z.output<typeof configSchema>;
export type CameraConfig = z.output<typeof cameraSchema>;
export type ObjectsConfig = z.output<typeof objectsSchema>;
export type AlertsConfig = z.output<typeof alertsSchema>;
export type RecordingConfig = z.output<typeof recordingSchema>;
export type Polygon = z.output<typeof polygon>;
export type Credentials = z.output<typeof credentialsSchema>;
export type EndpointConfig = z.output<typeof endpointSchema>;
export type S3EndpointConfig = z.output<typeof s3EndpointSchema>;
