import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { CamveilError } from '../errors.js';
import { appKeyOf, type AppKey } from './app-key.js';
import { auditHeadsSchema } from './audit-head-watch.js';
import { pinnedHubSchema, type PinnedHub } from './hub-message.js';

/** What an app keeps between runs: its key, last sequence number, pinned hubs and highest audit heads. */
export interface AppState {
  key: AppKey;
  seq: number;
  hubs: Record<string, PinnedHub>;
  auditHeads: z.infer<typeof auditHeadsSchema>;
  /** The identity file `camveil app` was last given: a path, never the key. */
  identityFile?: string;
}

const stateFileSchema = z.object({
  privateKey: z.string(),
  seq: z.number(),
  hubs: z.record(z.string(), pinnedHubSchema).optional(),
  auditHeads: auditHeadsSchema.optional(),
  identityFile: z.string().min(1).max(4096).optional(),
});

/**
 * Reads an app state file.
 *
 * @throws CamveilError `CAMVEIL_E_KEY_UNREADABLE` when the file is not an app key state file.
 */
export function readAppState(file: string): AppState {
  try {
    const state = stateFileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    const privateKey = createPrivateKey({ key: Buffer.from(state.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
    return { key: appKeyOf(privateKey), seq: state.seq, hubs: state.hubs ?? {}, auditHeads: state.auditHeads ?? {}, ...(state.identityFile === undefined ? {} : { identityFile: state.identityFile }) };
  } catch (error) {
    throw new CamveilError('CAMVEIL_E_KEY_UNREADABLE', `${file}: not an app key state file`, { where: file, cause: error });
  }
}

/** Writes `state` to `file`, mode 0600: it holds the app's private key. */
export function writeAppState(file: string, state: AppState): void {
  const pkcs8 = state.key.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
  const identityFile = state.identityFile === undefined ? {} : { identityFile: state.identityFile };
  writeFileSync(file, `${JSON.stringify({ privateKey: pkcs8, seq: state.seq, hubs: state.hubs, auditHeads: state.auditHeads, ...identityFile })}\n`, { mode: 0o600 });
}
