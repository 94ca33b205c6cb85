import { readFileSync } from 'node:fs';
import { CamveilError } from '../errors.js';
import { readS3Credentials } from '../s3/s3-credentials.js';
import type { CameraConfig, Config } from './schema.js';

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

/**
 * Every secret the configuration names, read once and let go, as `path: reason` problems (empty when all
 * can be read): each camera's password (file, environment variable or override), the broker's password and
 * key files, the uplink token and S3 credentials files. The secrets themselves are never returned or printed.
 */
export function secretProblems(config: Config, env: NodeJS.ProcessEnv = process.env): string[] {
  const problems: string[] = [];
  const check = (path: string, read: () => unknown) => {
    try {
      read();
    } catch (error) {
      const e = error instanceof CamveilError ? error : undefined;
      // The reading functions prefix their message with where the secret is named; the problem says it once.
      const cut = e?.where !== undefined && e.message.startsWith(e.where) ? e.message.indexOf(': ', e.where.length) : -1;
      const reason = e === undefined ? String(error) : cut >= 0 ? e.message.slice(cut + 2) : e.message;
      problems.push(`${path}: ${reason}`);
    }
  };
  config.cameras.forEach((camera, i) => {
    const creds = camera.credentials;
    if (creds === undefined) return;
    const path = `cameras[${i}].credentials.${creds.passwordEnv !== undefined ? 'passwordEnv' : 'passwordFile'}`;
    check(path, () => resolveCameraPassword(camera, env));
  });
  const m = config.mqtt;
  if (m?.passwordFile !== undefined) check('mqtt.passwordFile', () => readPasswordFile(m.passwordFile!, 'mqtt.passwordFile'));
  for (const key of ['caFile', 'certFile', 'keyFile'] as const) {
    const file = m?.[key];
    if (file !== undefined) check(`mqtt.${key}`, () => readFileOrExplain(file));
  }
  const token = config.uplink.tokenFile;
  if (config.uplink.enabled && token !== undefined) check('uplink.tokenFile', () => readPasswordFile(token, 'uplink.tokenFile'));
  for (const [zone, endpoint] of Object.entries(config.uplink.endpoints)) {
    if (config.uplink.enabled && endpoint?.type === 's3') check(`uplink.endpoints.${zone}.credentialsFile`, () => readS3Credentials(endpoint.credentialsFile));
  }
  return problems;
}

function readFileOrExplain(file: string): void {
  try {
    readFileSync(file);
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
