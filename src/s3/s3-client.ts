import { createHash } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import type { CuttableAgents } from './cuttable-agents.js';
import type { S3Credentials } from './s3-credentials.js';

export interface S3ClientOptions {
  /** An S3-compatible endpoint (`https://…`, or http to loopback); AWS S3 itself when absent. */
  endpoint?: string;
  region: string;
  /** `<endpoint>/<bucket>/<key>` instead of `<bucket>.<endpoint>/<key>`: most self-hosted stores need it. */
  forcePathStyle?: boolean;
  credentials: S3Credentials;
  /** Connection pools whose connections the owner can cut with a reset (an upload's withdrawal). */
  agents?: CuttableAgents;
}

/**
 * An SDK client that works with the S3-compatible stores households and providers run, not only AWS:
 * - checksums only where an operation requires one (`WHEN_REQUIRED`): current SDKs otherwise send
 *   `aws-chunked` bodies with trailing CRC32 checksums, which Swift's s3api (and other stores) refuse;
 * - `Content-MD5` on `DeleteObjects`, which S3's API requires and current SDKs no longer send on their own
 *   (they send a CRC32 instead, which AWS accepts and Swift does not);
 * - one attempt per call: the uploader owns retries and backoff, and an abort must end a call at once, not
 *   after the SDK's own retries;
 * - a silent SDK logger: the SDK otherwise prints to the console on every failed streamed request; our own
 *   code reports each outcome through its logger, with secrets redacted.
 * The caller destroys the client when done with it.
 */
const ignore = (): void => undefined;
/** The SDK's logger interface, saying nothing. */
const QUIET_SDK_LOGGER = { trace: ignore, debug: ignore, info: ignore, warn: ignore, error: ignore };

export function createS3Client(options: S3ClientOptions): S3Client {
  // The installed SDK (pinned by package-lock.json) runs on Node 20; its notice concerns later versions.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const client = new S3Client({
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    region: options.region,
    forcePathStyle: options.forcePathStyle ?? false,
    credentials: options.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    logger: QUIET_SDK_LOGGER,
    ...(options.agents === undefined ? {} : { requestHandler: { httpAgent: options.agents.http, httpsAgent: options.agents.https } }),
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === 'DeleteObjectsCommand' && request.headers !== undefined && (typeof request.body === 'string' || request.body instanceof Uint8Array)) {
        const present = Object.keys(request.headers).some((name) => name.toLowerCase() === 'content-md5');
        // MD5 here is the integrity header the S3 API defines for this request, not a security measure.
        if (!present) request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    },
    { step: 'build', name: 'camveilDeleteObjectsContentMd5', override: true },
  );
  return client;
}
