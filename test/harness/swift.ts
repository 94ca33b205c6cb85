import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/s3/s3-client.js';
import { freePort } from './mosquitto.js';
import { SYSTEM_PYTHON } from './system-python.js';

const SCRIPT = fileURLToPath(new URL('./swift_node.py', import.meta.url));

/**
 * A real S3-compatible object store for tests: Debian's OpenStack Swift (proxy, account, container and
 * object servers, one device, one replica) with the `s3api` middleware and `tempauth`, on loopback ports,
 * its rings, configs and data in one temporary directory. S3 access key `test:tester`, secret `testing`.
 */
export interface SwiftS3 {
  /** `http://127.0.0.1:<proxy port>`: the S3 endpoint (path-style). */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The proxy's port (a test may put a fault proxy in front of it). */
  port: number;
  /** A client for the test's own checks (src/s3/s3-client.ts: path style, checksums only when required). */
  client: S3Client;
  /** Creates a bucket; returns its name. */
  createBucket(name?: string): Promise<string>;
  /** Stops every server (SIGTERM, then SIGKILL) and removes the directory. */
  stop(): Promise<void>;
}

export const SWIFT_ACCESS_KEY = 'test:tester';
export const SWIFT_SECRET_KEY = 'testing';

type Server = 'proxy-server' | 'account-server' | 'container-server' | 'object-server';

let bucketSeq = 0;

/** Starts the four servers and waits until an S3 request through the proxy succeeds (about 5 s idle). */
export async function startSwift(options: { timeoutMs?: number } = {}): Promise<SwiftS3> {
  const dir = mkdtempSync(join(tmpdir(), 'camveil-swift-'));
  const devices = join(dir, 'srv');
  mkdirSync(join(devices, 'd1'), { recursive: true });
  const [proxyPort, accountPort, containerPort, objectPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const swiftConf = join(dir, 'swift.conf');
  writeFileSync(
    swiftConf,
    [
      '[swift-hash]',
      'swift_hash_path_suffix = camveil-test',
      'swift_hash_path_prefix = camveil-test',
      '[storage-policy:0]',
      'name = one',
      'default = yes',
      '',
    ].join('\n'),
  );
  // Logs go to each server's stderr (kept for the error message), not to syslog.
  const common = (port: number) =>
    [
      '[DEFAULT]',
      `swift_dir = ${dir}`,
      `devices = ${devices}`,
      'mount_check = false',
      'bind_ip = 127.0.0.1',
      `bind_port = ${port}`,
      'workers = 0',
      'log_level = WARNING',
      'log_custom_handlers =',
      `log_address = ${join(dir, 'no-syslog')}`,
      'disable_fallocate = true',
      '',
    ].join('\n');
  const confs: Record<Server, string> = {
    'account-server': `${common(accountPort)}[pipeline:main]\npipeline = account-server\n[app:account-server]\nuse = egg:swift#account\n`,
    'container-server': `${common(containerPort)}[pipeline:main]\npipeline = container-server\n[app:container-server]\nuse = egg:swift#container\nallow_versions = true\n`,
    'object-server': `${common(objectPort)}[pipeline:main]\npipeline = object-server\n[app:object-server]\nuse = egg:swift#object\n`,
    // s3api right before tempauth, slo after it (multipart completion writes an SLO manifest); a cache
    // filter (no memcached behind it); error_suppression_interval 0, else one slow answer from the single
    // device takes it out of service for 60 s.
    'proxy-server': [
      common(proxyPort),
      '[pipeline:main]',
      'pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server',
      '[app:proxy-server]',
      'use = egg:swift#proxy',
      'account_autocreate = true',
      'error_suppression_interval = 0',
      'node_timeout = 30',
      'recoverable_node_timeout = 30',
      '[filter:catch_errors]\nuse = egg:swift#catch_errors',
      '[filter:gatekeeper]\nuse = egg:swift#gatekeeper',
      '[filter:healthcheck]\nuse = egg:swift#healthcheck',
      '[filter:proxy-logging]\nuse = egg:swift#proxy_logging',
      `[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:1`,
      '[filter:listing_formats]\nuse = egg:swift#listing_formats',
      '[filter:s3api]\nuse = egg:swift#s3api\nlocation = us-east-1\ns3_acl = false\nallow_multipart_uploads = true',
      `[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = ${SWIFT_SECRET_KEY} .admin\nuser_test_other = other .admin`,
      '[filter:copy]\nuse = egg:swift#copy',
      '[filter:slo]\nuse = egg:swift#slo',
      '[filter:dlo]\nuse = egg:swift#dlo',
      '[filter:versioned_writes]\nuse = egg:swift#versioned_writes\nallow_object_versioning = true',
      '[filter:symlink]\nuse = egg:swift#symlink',
      '',
    ].join('\n'),
  };

  const children: ChildProcess[] = [];
  const stderrs = new Map<Server, string>();
  let exitedEarly: string | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const rings = spawnSync(SYSTEM_PYTHON, [SCRIPT, 'rings', dir, String(accountPort), String(containerPort), String(objectPort)], { encoding: 'utf8' });
    if (rings.status !== 0) throw new Error(`swift rings: ${rings.stderr}`);
    for (const server of Object.keys(confs) as Server[]) {
      const conf = join(dir, `${server}.conf`);
      writeFileSync(conf, confs[server]);
      const child = spawn(SYSTEM_PYTHON, [SCRIPT, 'serve', conf, server, swiftConf], { stdio: ['ignore', 'ignore', 'pipe'] });
      children.push(child);
      stderrs.set(server, '');
      child.stderr?.on('data', (d: Buffer) => stderrs.set(server, ((stderrs.get(server) ?? '') + d.toString()).slice(-4000)));
      child.once('exit', (code, signal) => (exitedEarly ??= `${server} exited (code ${code}, signal ${signal}): ${stderrs.get(server) ?? ''}`));
    }
    const endpoint = `http://127.0.0.1:${proxyPort}`;
    const client = swiftS3Client(endpoint);
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    // Ready when an S3 request has gone through proxy, tempauth and all three storage servers.
    const probe = `camveil-probe-${process.pid}`;
    for (;;) {
      if (exitedEarly !== undefined) throw new Error(`swift: ${exitedEarly}`);
      try {
        await client.send(new CreateBucketCommand({ Bucket: probe }));
        break;
      } catch (error) {
        if (Date.now() > deadline) {
          const logs = [...stderrs].map(([s, e]) => `${s}: ${e.trim()}`).join('\n');
          throw new Error(`swift did not answer S3 within ${options.timeoutMs ?? 60_000} ms (${String(error)})\n${logs}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return {
      endpoint,
      region: 'us-east-1',
      accessKeyId: SWIFT_ACCESS_KEY,
      secretAccessKey: SWIFT_SECRET_KEY,
      port: proxyPort,
      client,
      createBucket: async (name) => {
        bucketSeq += 1;
        const bucket = name ?? `camveil-test-${process.pid}-${bucketSeq}`;
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        return bucket;
      },
      stop: async () => {
        client.destroy();
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A client for the local Swift, built as the hub builds its own (src/s3/s3-client.ts). */
export function swiftS3Client(endpoint: string, credentials = { accessKeyId: SWIFT_ACCESS_KEY, secretAccessKey: SWIFT_SECRET_KEY }): S3Client {
  return createS3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
}
