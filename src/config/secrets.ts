import { readFileSync } from 'node:fs';
import { CamveilError } from '../errors.js';
import type { CameraConfig } from './schema.js';

/** Name of the environment variable that overrides a camera's password: CAMVEIL_CAMERA_<ID>_PASSWORD. */
export function passwordOverrideEnv(cameraId: string): string {
  return `CAMVEIL_CAMERA_${cameraId.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PASSWORD`;
}

/**
 * Resolves a camera's password at the moment it is needed (never kept in the config object).
 * Order: CAMVEIL_CAMERA_<ID>_PASSWORD, then credentials.passwordEnv, then credentials.passwordFile.
 * Returns undefined when the camera has no credentials.
 */
export function resolveCameraPassword(camera: CameraConfig, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const where = `cameras[${camera.id}].credentials`;
  const override = env[passwordOverrideEnv(camera.id)];
  if (override !== undefined && override !== '') return override;
  const creds = camera.credentials;
  if (creds === undefined) return undefined;
  if (creds.passwordEnv !== undefined) {
    const value = env[creds.passwordEnv];
    if (value === undefined || value === '') {
      throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `${where}.passwordEnv: environment variable ${creds.passwordEnv} is not set`, { where });
    }
    return value;
  }
  if (creds.passwordFile !== undefined) return readPasswordFile(creds.passwordFile, `${where}.passwordFile`);
  return undefined;
}

/** Reads a password file: its first line, without the line ending. The error names the file, never the content. */
export function readPasswordFile(file: string, where: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `${where}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, {
      where,
    });
  }
  const first = text.split(/\r?\n/, 1)[0] ?? '';
  if (first === '') throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `${where}: ${file} is empty`, { where });
  return first;
}
