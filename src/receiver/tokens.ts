import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { z } from 'zod';
import { CamveilError } from '../errors.js';

/** Hub pseudonyms as src/crypto/pseudonym.ts makes them: `hub_` and 16 base32 characters. */
export const HUB_PSEUDONYM_PATTERN = /^hub_[a-z2-7]{16}$/;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The receiver's tokens file: for each hub pseudonym, the SHA-256 (hex) of its upload token and,
 * optionally, of a household read token. Tokens are 32 random bytes, so a plain digest is enough: there
 * is nothing to guess that a slow hash would protect. The file holds no token itself.
 *
 * ```
 * {"version":1,"hubs":{"hub_…":{"upload":"<sha256 hex>","read":"<sha256 hex>"}}}
 * ```
 */
export const tokensFileSchema = z.strictObject({
  version: z.literal(1),
  hubs: z
    .record(
      z.string(),
      z.strictObject({
        upload: z.string().regex(SHA256_HEX, 'must be 64 lower-case hex digits (SHA-256 of the token)'),
        read: z.string().regex(SHA256_HEX, 'must be 64 lower-case hex digits (SHA-256 of the token)').optional(),
      }),
    )
    // Keys checked here rather than by the record's key schema, whose message does not say what is wrong.
    .superRefine((hubs, ctx) => {
      for (const hub of Object.keys(hubs)) {
        if (!HUB_PSEUDONYM_PATTERN.test(hub)) ctx.addIssue({ code: 'custom', path: [hub], message: 'key must be a hub pseudonym (hub_ and 16 base32 characters)' });
      }
    }),
});

export type TokensFile = z.infer<typeof tokensFileSchema>;

/** What a token may do: `upload` (PUT, DELETE, list, get) or `read` (list, get). */
export type TokenRole = 'upload' | 'read';

interface HubDigests {
  upload: Buffer;
  read?: Buffer;
}

/** The digests of one tokens file, by hub pseudonym. */
export type TokenTable = ReadonlyMap<string, HubDigests>;

/** How a request's bearer token stands towards the hub in its path. */
export type TokenVerdict = 'allowed' | 'unauthenticated' | 'forbidden';

/** A fresh token: 32 random bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** SHA-256 of a token, lower-case hex, as the tokens file keeps it. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Checks the file's content and turns it into a table.
 *
 * @throws CamveilError `CAMVEIL_E_CONFIG_INVALID` listing every problem as `path: reason` (never a hash),
 * also when two entries share a digest (one token for two hubs is what the file exists to prevent).
 */
export function parseTokensFile(text: string, file: string): TokenTable {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `receiver tokens file ${file} is not JSON`, { where: file });
  }
  const parsed = tokensFileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(file)'}: ${i.message}`);
    throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `receiver tokens file ${file}: ${problems.join('; ')}`, { where: file });
  }
  const table = new Map<string, HubDigests>();
  const seen = new Map<string, string>();
  for (const [hub, entry] of Object.entries(parsed.data.hubs)) {
    for (const [role, hex] of Object.entries(entry) as Array<[TokenRole, string]>) {
      const other = seen.get(hex);
      if (other !== undefined) {
        throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `receiver tokens file ${file}: hubs.${hub}.${role}: same token as ${other}`, {
          where: file,
        });
      }
      seen.set(hex, `hubs.${hub}.${role}`);
    }
    table.set(hub, { upload: Buffer.from(entry.upload, 'hex'), ...(entry.read === undefined ? {} : { read: Buffer.from(entry.read, 'hex') }) });
  }
  return table;
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'error';
}

function unreadable(file: string, why: string, cause?: unknown, what = 'receiver tokens file'): CamveilError {
  return new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `${what} ${file} ${why}`, { where: file, cause });
}

/**
 * Reads the tokens file as a secret: through a no-follow descriptor, a regular file owned by this user
 * with no group/other permission bits (the digests would let anyone who reads them test guesses offline
 * and learn which hubs exist).
 *
 * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE` when it cannot be opened or its mode is too open;
 * `CAMVEIL_E_CONFIG_INVALID` when its content is not valid (see parseTokensFile).
 */
export async function readTokensFile(file: string): Promise<TokenTable> {
  return parseTokensFile(await readPrivateText(file), file);
}

/**
 * A secret file's text, read through a no-follow descriptor: a regular file owned by this user with no
 * group/other permission bits. `what` names it in messages (never its content).
 *
 * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE`.
 */
export async function readPrivateText(file: string, what = 'receiver tokens file'): Promise<string> {
  let handle;
  try {
    handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (error) {
    throw unreadable(file, codeOf(error) === 'ELOOP' ? 'is a symbolic link' : `cannot be opened (${codeOf(error)})`, error, what);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw unreadable(file, 'is not a regular file', undefined, what);
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) throw unreadable(file, 'is not owned by the user running camveil', undefined, what);
    if ((stat.mode & 0o077) !== 0) {
      throw unreadable(file, `has group/other permission bits (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`, undefined, what);
    }
    return await handle.readFile('utf8');
  } catch (error) {
    if (error instanceof CamveilError) throw error;
    throw unreadable(file, `cannot be read (${codeOf(error)})`, error, what);
  } finally {
    await handle.close();
  }
}

/**
 * Adds (or, with `replace`, replaces) one hub's entry, writing the file atomically with mode 0600; a
 * missing file is created. Only digests are written.
 *
 * @throws CamveilError `CAMVEIL_E_USAGE` when the hub has an entry and `replace` is not set, or a digest
 * is already another entry's; the errors of readTokensFile for an existing file.
 */
export async function addHubEntry(file: string, hub: string, entry: { upload: string; read?: string }, replace = false): Promise<void> {
  let current: TokensFile = { version: 1, hubs: {} };
  let text: string | undefined;
  try {
    text = await readPrivateText(file);
  } catch (error) {
    if (!(error instanceof CamveilError && codeOf(error.cause) === 'ENOENT')) throw error;
  }
  if (text !== undefined) {
    parseTokensFile(text, file);
    current = tokensFileSchema.parse(JSON.parse(text));
  }
  if (Object.hasOwn(current.hubs, hub) && !replace) {
    throw new CamveilError('CAMVEIL_E_USAGE', `${hub} already has an entry in ${file}; pass --replace to issue new tokens`, { where: file });
  }
  const next: TokensFile = { version: 1, hubs: { ...current.hubs, [hub]: entry } };
  // Validates the new entry too (pseudonym, digests, no digest shared with another hub).
  parseTokensFile(JSON.stringify(next), file);
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(next, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/**
 * Decides whether `authorization` (the request's header) may act as `role` on `hub`. Every digest in
 * the table is compared, in constant time and without stopping at a match, so the answer's timing says
 * nothing about which hub or role a token belongs to. A token of another hub is `forbidden` (403); no
 * token, or one that is nobody's, is `unauthenticated` (401). An upload token may also read its hub.
 */
export function checkToken(table: TokenTable, authorization: string | undefined, hub: string, role: TokenRole): TokenVerdict {
  const match = /^Bearer ([\x21-\x7e]+)$/.exec(authorization ?? '');
  if (match === null) return 'unauthenticated';
  const presented = createHash('sha256').update(match[1]!, 'utf8').digest();
  let known = false;
  let allowed = false;
  for (const [name, digests] of table) {
    const upload = timingSafeEqual(presented, digests.upload);
    const read = digests.read !== undefined && timingSafeEqual(presented, digests.read);
    known = known || upload || read;
    if (name === hub) allowed = upload || (role === 'read' && read);
  }
  if (allowed) return 'allowed';
  return known ? 'forbidden' : 'unauthenticated';
}
