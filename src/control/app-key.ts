import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { keyIdOf } from './key-registry.js';

/** An app's Ed25519 key: the private key, its raw public key (base64) and key id. */
export interface AppKey {
  privateKey: KeyObject;
  publicKey: string;
  keyId: string;
}

export function generateAppKey(): AppKey {
  return appKeyOf(generateKeyPairSync('ed25519').privateKey);
}

/** The app key of an Ed25519 private key: its raw public key and the key id the hub registers it under. */
export function appKeyOf(privateKey: KeyObject): AppKey {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x ?? '', 'base64url');
  return { privateKey, publicKey: raw.toString('base64'), keyId: keyIdOf(raw) };
}
