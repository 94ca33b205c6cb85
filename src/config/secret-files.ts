import { statSync } from 'node:fs';
import type { Config } from './schema.js';

/**
 * The secret files a configuration names besides the hub's own keys: the uplink token, S3 credentials files, the MQTT password and
 * TLS client key, and camera password files. The hub's own keys (`<dataDir>/keys/`) are refused outright
 * when group or others can read them (crypto/hub-keys.ts: the hub does not start); these are read as they
 * are, because refusing them would stop cameras over a file the household may share on purpose — but a
 * group/other permission bit on one is a security incident the household is told of (`key-file-permissions`).
 */
export function secretFilesOf(config: Config): Array<{ what: string; file: string }> {
  const files: Array<{ what: string; file: string }> = [];
  if (config.uplink.tokenFile !== undefined) files.push({ what: 'uplink.tokenFile', file: config.uplink.tokenFile });
  for (const [zone, endpoint] of Object.entries(config.uplink.endpoints)) {
    if (endpoint?.type === 's3') files.push({ what: `uplink.endpoints.${zone}.credentialsFile`, file: endpoint.credentialsFile });
  }
  if (config.mqtt?.passwordFile !== undefined) files.push({ what: 'mqtt.passwordFile', file: config.mqtt.passwordFile });
  if (config.mqtt?.keyFile !== undefined) files.push({ what: 'mqtt.keyFile', file: config.mqtt.keyFile });
  for (const camera of config.cameras) {
    if (camera.credentials?.passwordFile !== undefined) files.push({ what: 'camera password file', file: camera.credentials.passwordFile });
  }
  return files;
}

/**
 * The secret files (by what they are, never by path: a path can name a person) that group or others may
 * read or write. A file that cannot be stat'ed is left to the code that reads it to report.
 */
export function looseSecretFiles(config: Config): string[] {
  const loose: string[] = [];
  for (const { what, file } of secretFilesOf(config)) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) loose.push(what);
    } catch {
      // missing or unreadable: reported where it is read
    }
  }
  return loose;
}
