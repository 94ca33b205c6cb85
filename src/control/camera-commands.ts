import { z } from 'zod';
import { cameraSchema, type CameraConfig } from '../config/schema.js';
import { decryptToBuffer } from '../crypto/age-stream.js';
import { CamveilError } from '../errors.js';
import type { CameraRegistry } from './camera-registry.js';
import { defineHandler, type CommandHandler } from './command.js';
import { decodeBase64 } from './key-registry.js';

export interface CameraCommandDeps {
  registry: CameraRegistry;
  hubIdentity: string;
  /** Camera ids defined in the configuration file: the app cannot replace or remove those. */
  configCameraIds: () => ReadonlySet<string>;
  /** Starts, restarts or stops the camera's pipeline after a change. */
  apply: (change: { kind: 'added' | 'updated'; camera: CameraConfig } | { kind: 'removed'; cameraId: string }) => Promise<void>;
}

/** The camera as the app describes it: the config schema's camera, with credentials as a user name only. */
const cameraArgs = z.strictObject({
  camera: z.unknown(),
  /**
   * The camera password sealed with age to the hub's recipient (pinned at pairing), base64. The args are
   * sealed as a whole too; the password is sealed once more on its own because the hub stores it as sealed.
   */
  sealedPassword: z.string().min(1).max(64 * 1024).optional(),
});

async function checkSealedPassword(hubIdentity: string, text: string | undefined): Promise<Buffer | undefined> {
  if (text === undefined) return undefined;
  const bytes = decodeBase64(text);
  if (bytes === undefined) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', 'sealedPassword: not base64');
  try {
    const password = await decryptToBuffer(hubIdentity, bytes);
    if (password.length === 0 || password.length > 256) throw new Error('length');
  } catch {
    throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', "sealedPassword: must be the password sealed with age to the hub's recipient");
  }
  // Stored as sealed: the hub opens it only when the camera connects.
  return bytes;
}

function parseCamera(raw: unknown): CameraConfig {
  const parsed = cameraSchema.safeParse(raw);
  if (!parsed.success) {
    throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `camera: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const camera = parsed.data;
  if (camera.credentials?.passwordFile !== undefined || camera.credentials?.passwordEnv !== undefined) {
    throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', 'camera.credentials: give only the user name; send the password as sealedPassword');
  }
  if (camera.source.startsWith('file:') || camera.subSource?.startsWith('file:') === true) {
    throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', 'camera.source: file: sources can only be set in the configuration file');
  }
  return camera;
}

/**
 * `cameras/add|update|remove` from the app. Adding or changing a camera (a new source of video, and a
 * credential) widens what the hub processes, so all three need a paired key's signature. The args (camera
 * id, name, source URL) arrive sealed to the hub as a whole (envelope.ts); the password is sealed within them
 * on its own and stored as it came, so the hub opens it only when the camera connects.
 */
export function cameraCommands(deps: CameraCommandDeps): Record<string, CommandHandler> {
  const guard = (id: string) => {
    if (deps.configCameraIds().has(id)) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `camera ${id} is defined in the configuration file; change it there`);
  };
  return {
    'cameras/add': defineHandler({
      requires: 'signature',
      args: cameraArgs,
      run: async (args) => {
        const camera = parseCamera(args.camera);
        guard(camera.id);
        if (deps.registry.has(camera.id)) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `camera ${camera.id} exists; use cameras/update`);
        deps.registry.put(camera, (await checkSealedPassword(deps.hubIdentity, args.sealedPassword)) ?? null);
        await deps.apply({ kind: 'added', camera });
        // The reply does not echo the id: the args travelled sealed, the signed reply is in clear.
        return { added: true };
      },
    }),
    'cameras/update': defineHandler({
      requires: 'signature',
      args: cameraArgs,
      run: async (args) => {
        const camera = parseCamera(args.camera);
        guard(camera.id);
        if (!deps.registry.has(camera.id)) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `no app-managed camera ${camera.id}`);
        deps.registry.put(camera, await checkSealedPassword(deps.hubIdentity, args.sealedPassword));
        await deps.apply({ kind: 'updated', camera });
        return { updated: true };
      },
    }),
    'cameras/remove': defineHandler({
      requires: 'signature',
      args: z.strictObject({ cameraId: z.string().min(1).max(63) }),
      run: async (args) => {
        guard(args.cameraId);
        if (!deps.registry.remove(args.cameraId)) throw new CamveilError('CAMVEIL_E_REQUEST_INVALID', `no app-managed camera ${args.cameraId}`);
        await deps.apply({ kind: 'removed', cameraId: args.cameraId });
        return { removed: true };
      },
    }),
  };
}
