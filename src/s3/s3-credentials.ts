import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { CamveilError } from '../errors.js';

/** An S3 key pair (and a session token for temporary credentials). */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const credentialsSchema = z.strictObject({
  accessKeyId: z.string().min(1).max(512).regex(/^\S+$/, 'must hold no white space'),
  secretAccessKey: z.string().min(1).max(1024).regex(/^\S+$/, 'must hold no white space'),
  sessionToken: z.string().min(1).max(8192).regex(/^\S+$/, 'must hold no white space').optional(),
});

/**
 * Reads an S3 credentials file: YAML or JSON with `accessKeyId`, `secretAccessKey` and, for temporary
 * credentials, `sessionToken`. Every message names the file and the field, never a value: a secret that
 * lands in a wrong field must not reach a log through the error that refuses it.
 *
 * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE`.
 */
export function readS3Credentials(file: string): S3Credentials {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `S3 credentials file ${file} cannot be read (${code})`, { where: file, cause: error });
  }
  return parseS3Credentials(text, file);
}

/**
 * The credentials in a credentials file's text, already read (by a caller that checks the file's owner and
 * mode as it reads it); `file` only names it in messages.
 *
 * @throws CamveilError `CAMVEIL_E_SECRET_UNREADABLE`.
 */
export function parseS3Credentials(text: string, file: string): S3Credentials {
  let value: unknown;
  try {
    value = parse(text);
  } catch {
    // The parser's message quotes the text around the fault: it may be the secret.
    throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `S3 credentials file ${file} is not YAML or JSON`, { where: file });
  }
  const parsed = credentialsSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(file)'}: ${issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message}`);
    throw new CamveilError('CAMVEIL_E_SECRET_UNREADABLE', `S3 credentials file ${file} must hold accessKeyId and secretAccessKey (${problems.join('; ')})`, {
      where: file,
    });
  }
  const { accessKeyId, secretAccessKey, sessionToken } = parsed.data;
  return sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken };
}
