import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { probeCamera } from '../../src/cameras/probe.js';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { CapturingSink } from '../harness/capturing-sink.js';
import { startOnvifDevice, type OnvifDeviceSim } from '../harness/onvif-device.js';
import { describeWithPeers } from '../harness/peers.js';
import { startRtspAuthRecorder, type RtspAuthRecorder } from '../harness/rtsp-auth-recorder.js';
import { waitFor } from '../harness/wait.js';

const PASSWORD = 'Zq7&p@ss:w0rd%21!';
/** The ONVIF device listens on 127.0.0.1; the stream it names is on another loopback address. */
const OTHER_HOST = '127.0.0.2';

describeWithPeers(['ffmpeg'], 'an ONVIF device naming a stream on another host gets no credentials sent there', () => {
  let recorder: RtspAuthRecorder;
  let device: OnvifDeviceSim;
  let dataDir: string;

  beforeEach(async () => {
    recorder = await startRtspAuthRecorder(OTHER_HOST);
    device = await startOnvifDevice({ password: PASSWORD, mainUri: recorder.url, subUri: recorder.url.replace('videoMain', 'videoSub') });
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'camveil-streamhost-'));
    writeFileSync(path.join(dataDir, 'pw'), `${PASSWORD}\n`, { mode: 0o600 });
  });
  afterEach(async () => {
    await Promise.all([recorder.stop(), device.stop()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function runGateway(sendToStreamHost: boolean | undefined, until: () => boolean): Promise<string> {
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(chunk.toString());
          callback();
        },
      }),
    });
    const credentials = { username: 'admin', passwordFile: path.join(dataDir, 'pw'), ...(sendToStreamHost === undefined ? {} : { sendToStreamHost }) };
    const config = validateConfig(
      { hub: { id: 'hub', region: 'DE' }, dataDir, cameras: [{ id: 'door', source: device.xaddr, credentials, motion: { enabled: false } }] },
      'test config',
      dataDir,
    );
    const gateway = new Gateway({ config, logger, sink: new CapturingSink(), backoff: { initialMs: 300, maxMs: 1000 } });
    try {
      await gateway.start();
      await waitFor('ffmpeg to reach the other host', until, 45_000);
    } finally {
      await gateway.stop();
    }
    return lines.join('');
  }

  it('withholds the credentials by default, says so in a warning that names no host and no secret', async () => {
    // Two DESCRIBEs: ffmpeg asked, was challenged, and gave up (it had nothing to answer the challenge with).
    const logs = await runGateway(undefined, () => recorder.methods.filter((m) => m === 'DESCRIBE').length >= 2);
    expect(recorder.authorizations).toEqual([]);
    expect(logs).toContain('names a main stream on another host; its credentials are not sent there');
    expect(logs).toContain('credentials.sendToStreamHost');
    expect(logs).not.toContain(OTHER_HOST);
    expect(logs).not.toContain(PASSWORD);
    expect(logs).not.toContain(encodeURIComponent(PASSWORD));
  }, 90_000);

  it('sends them when the camera config says credentials.sendToStreamHost: true', async () => {
    const logs = await runGateway(true, () => recorder.authorizations.length > 0);
    expect(recorder.authorizations[0]).toBe(`admin:${PASSWORD}`);
    expect(logs).not.toContain('on another host');
  }, 90_000);

  it('camveil probe withholds them too, and says why in its report', async () => {
    const report = await probeCamera(device.xaddr, { user: 'admin', password: PASSWORD }, { timeoutMs: 10_000 });
    expect(report.credentialsWithheld).toContain('another host');
    expect(report.mainStream).toMatchObject({ ok: false, error: { code: 'CAMVEIL_E_CAMERA_AUTH' } });
    expect(recorder.methods).toContain('DESCRIBE');
    expect(recorder.authorizations).toEqual([]);
    const withFlag = await probeCamera(device.xaddr, { user: 'admin', password: PASSWORD }, { timeoutMs: 10_000, sendToStreamHost: true });
    expect(withFlag.credentialsWithheld).toBeUndefined();
    expect(recorder.authorizations).toEqual([`admin:${PASSWORD}`]);
  }, 60_000);
});
