import { spawnSync } from 'node:child_process';
import { describe, it } from 'vitest';
import { faketimeLibrary } from './hub-process.js';
import { SYSTEM_PYTHON } from './system-python.js';

/**
 * Peers are Debian programs some tests need (mosquitto, the age CLI, GStreamer's RTSP server, OpenStack Swift). On a
 * developer machine without them those tests are skipped, saying which peer is missing; CI installs them
 * and sets CAMVEIL_REQUIRE_PEERS=1, under which a missing peer fails the suite instead.
 */
export type Peer = 'ffmpeg' | 'mosquitto' | 'age' | 'gst-rtsp-server' | 'faketime' | 'swift';

const checks: Record<Peer, () => boolean> = {
  ffmpeg: () => spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0,
  mosquitto: () => spawnSync('mosquitto', ['-h'], { stdio: 'ignore' }).error === undefined ||
    spawnSync('/usr/sbin/mosquitto', ['-h'], { stdio: 'ignore' }).error === undefined,
  age: () => spawnSync('age', ['--version'], { stdio: 'ignore' }).status === 0,
  'gst-rtsp-server': () =>
    spawnSync(SYSTEM_PYTHON, ['-c', "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer"], {
      stdio: 'ignore',
    }).status === 0,
  // Debian's libfaketime: steps the wall clock of a running hub (test/harness/hub-process.ts).
  faketime: () => faketimeLibrary() !== undefined,
  // Debian's OpenStack Swift with s3api: the S3-compatible object store (test/harness/swift.ts).
  swift: () =>
    spawnSync(SYSTEM_PYTHON, ['-c', 'import swift.proxy.server, swift.obj.server, swift.container.server, swift.account.server, swift.common.middleware.s3api'], {
      stdio: 'ignore',
    }).status === 0,
};

export { SYSTEM_PYTHON };

const cache = new Map<Peer, boolean>();

export function hasPeer(peer: Peer): boolean {
  let ok = cache.get(peer);
  if (ok === undefined) {
    ok = checks[peer]();
    cache.set(peer, ok);
  }
  return ok;
}

export const peersRequired = process.env.CAMVEIL_REQUIRE_PEERS === '1';

/**
 * `describe` that runs when every peer is present; otherwise skips (naming the missing peers) or, under
 * CAMVEIL_REQUIRE_PEERS=1, fails with a test that names them.
 */
export function describeWithPeers(peers: Peer[], title: string, body: () => void): void {
  const missing = peers.filter((p) => !hasPeer(p));
  if (missing.length === 0) {
    describe(title, body);
  } else if (peersRequired) {
    describe(title, () => {
      it(`has its peers (${missing.join(', ')} missing)`, () => {
        throw new Error(`CAMVEIL_REQUIRE_PEERS=1 but these peers are not installed: ${missing.join(', ')}`);
      });
    });
  } else {
    describe.skipIf(true)(`${title} [skipped: ${missing.join(', ')} not installed]`, body);
  }
}
