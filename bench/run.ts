/**
 * `npm run bench -- <name>…` runs the named benchmarks (all when none is named) and prints one JSON
 * document. Each benchmark measures its baseline in the same process run, so figures are ratios that
 * hold across machines; none of this is asserted in tests.
 */
const BENCHES: Record<string, () => Promise<{ default?: unknown } & Record<string, unknown>>> = {
  ingest: () => import('./ingest.js'),
  crypto: () => import('./crypto.js'),
  faces: () => import('./faces.js'),
  withdrawal: () => import('./withdrawal.js'),
  'faces-live': () => import('./faces-live.js'),
  'clip-blur': () => import('./clip-blur.js'),
  'alert-latency': () => import('./alert-latency.js'),
  soak: () => import('./soak.js'),
  control: () => import('./control.js'),
  startup: () => import('./startup.js'),
  objects: () => import('./objects.js'),
  uplink: () => import('./uplink.js'),
};

const FUNCTION_NAMES: Record<string, string> = { ingest: 'benchIngest', crypto: 'benchCrypto', faces: 'benchFaces', withdrawal: 'benchWithdrawal', 'faces-live': 'benchFacesLive', 'clip-blur': 'benchClipBlur', 'alert-latency': 'benchAlertLatency', soak: 'benchSoak', control: 'benchControl', startup: 'benchStartup', objects: 'benchObjects', uplink: 'benchUplink' };

async function main(): Promise<void> {
  const requested = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = requested.length > 0 ? requested : Object.keys(BENCHES);
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  const results: Record<string, unknown> = {};
  for (const name of names) {
    const mod = await BENCHES[name]!();
    const fn = mod[FUNCTION_NAMES[name]!] as (() => Promise<unknown>) | undefined;
    if (typeof fn !== 'function') throw new Error(`bench/${name}.ts does not export ${FUNCTION_NAMES[name]}`);
    process.stderr.write(`running ${name}…\n`);
    results[name] = await fn();
  }
  process.stdout.write(`${JSON.stringify({ machine: { cpus: (await import('node:os')).cpus().length, node: process.version }, results }, null, 2)}\n`);
}

await main();
