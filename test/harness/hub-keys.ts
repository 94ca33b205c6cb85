import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import type { ControlResponse } from '../../src/control/command.js';
import { openHubMessage, type PinnedHub } from '../../src/control/hub-message.js';
import { openReply } from '../../src/control/sealed-reply.js';
import { rawPublicKeyOf } from '../../src/crypto/hub-keys.js';

/** A hub's keys for a ControlPlane built in a test, and what an app that paired with it has pinned. */
export interface TestHubKeys {
  hub: { signingKey: KeyObject; signingPublicKey: string; recipient: string; identity: string };
  /** The hub's age identity (opens what the app sealed for the hub). */
  identity: string;
  pinned: PinnedHub;
}

export async function testHubKeys(hubId: string, baseTopic = 'camveil'): Promise<TestHubKeys> {
  const signingKey = generateKeyPairSync('ed25519').privateKey;
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const signingPublicKey = rawPublicKeyOf(signingKey);
  return { hub: { signingKey, signingPublicKey, recipient, identity }, identity, pinned: { hubId, baseTopic, signingKey: signingPublicKey, recipient } };
}

/**
 * The reply inside a signed hub response, checked against `pinned` (at `now`) and opened with `identity` (a
 * household or paired phone's age identity) as the app would: the result and error message are sealed.
 */
export async function replyOf(bytes: Buffer | string, pinned: PinnedHub, now = Date.now(), identity?: string): Promise<ControlResponse> {
  const payload = openHubMessage(Buffer.from(bytes), pinned, 'response', now);
  return openReply(payload.command, payload.response, identity === undefined ? undefined : [identity]);
}
