import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { camveilCli as camveil } from '../harness/hub-process.js';

const BIN = fileURLToPath(new URL('../../bin/camveil.js', import.meta.url));


describe('camveil CLI', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'camveil-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('config check: exit 0 for a valid file', async () => {
    const file = path.join(dir, 'ok.yaml');
    writeFileSync(file, 'hub:\n  id: home\n  region: US-IL\ncameras:\n  - id: front\n    source: rtsp://192.168.1.20:88/videoMain\n');
    const r = await camveil(['config', 'check', file]);
    expect(r.code).toBe(0);
  });

  it('config check: exit 2 listing every problem as path: reason', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'hub:\n  id: Home!\n  region: Illinois\ncameras:\n  - id: front\n    source: rtsp://admin:pw@cam/x\n    colour: red\n',
    );
    const r = await camveil(['config', 'check', file]);
    expect(r.code).toBe(2);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/hub\.id: /);
    expect(out).toMatch(/hub\.region: /);
    expect(out).toMatch(/cameras\[0\]\.source: the URL holds a password/);
    expect(out).toMatch(/cameras\[0\]: unknown key\(s\) "colour"/);
    expect(out).not.toContain(':pw@');
  });

  it('run: exit 2 on a bad config before anything starts, and on bad usage', async () => {
    const r = await camveil(['run', '--config', path.join(dir, 'missing.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('CAMVEIL_E_CONFIG_UNREADABLE');
    expect((await camveil(['run'])).code).toBe(2);
    expect((await camveil(['no-such-command'])).code).toBe(2);
  });

  it('run: serves a file camera until SIGTERM, logging JSON lines, and exits 0', async () => {
    const video = path.join(dir, 'missing-video.mp4');
    const file = path.join(dir, 'run.yaml');
    const dataDir = path.join(dir, 'data');
    writeFileSync(file, `hub:\n  id: home\n  region: DE\ndataDir: ${dataDir}\ncameras:\n  - id: gone\n    source: file:${video}\n`);
    const child = spawn(process.execPath, [BIN, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!stdout.includes('CAMVEIL_E_CAMERA_NOT_VIDEO') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number; code?: string });
    expect(lines.some((l) => l.code === 'CAMVEIL_E_CAMERA_NOT_VIDEO')).toBe(true);
    expect(lines.at(-1)!.msg).toBe('gateway stopped');
    // The hub's keys and its database (consent, audit); no media: without household recipients nothing is stored.
    expect(readdirSync(dataDir).filter((f) => !/^camveil\.db(-wal|-shm)?$/.test(f))).toEqual(['keys']);
  });

  it('demo: shows the sample camera streaming, motion, a clip sealed, stored and received by the local cloud', async () => {
    const r = await camveil(['demo', '--for', '30'], 120_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/sample-cam\s+camera streaming/);
    expect(r.stdout).toMatch(/Enrolled "Demo person" \(person_[a-z2-7]{16}\) from a face cropped in memory/);
    expect(r.stdout).toContain('Face recognition on sample-cam (region DE): allowed.');
    expect(r.stdout).toMatch(/sample-cam\s+motion started/);
    expect(r.stdout).toMatch(/sample-cam\s+snapshot: 640x360 JPEG/);
    expect(r.stdout).toMatch(/sample-cam\s+clip ready: \d+\.\d s, [\d.]+ [kM]B/);
    expect(r.stdout).toMatch(/sample-cam\s+sealed clip → stored as [a-z2-7]{8}….age \([\d.]+ [kM]B of age ciphertext\)/);
    expect(r.stdout).toMatch(/cloud\s+received [a-z2-7]{8}…: [\d.]+ [kM]B of ciphertext/);
    expect(r.stdout).toMatch(/Stopped\. The receiver holds [1-9]\d* object\(s\), [\d.]+ MB, all age ciphertext\./);
  }, 150_000);
});
