// `npm run test:load`: the integration and fault suites with every core kept busy by another process, the
// way a hub (or CI) runs while it also does other work. Busy loops at the same priority as the tests take
// about half of each core. Usage: npm run test:load [-- --runs N] [vitest file filters...]
import { spawn } from 'node:child_process';
import os from 'node:os';

const argv = process.argv.slice(2);
let runs = 1;
const filters: string[] = [];
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i]!;
  if (arg === '--runs') runs = Number(argv[++i]);
  else filters.push(arg);
}
if (!Number.isInteger(runs) || runs < 1) {
  console.error('test:load: --runs needs a positive whole number');
  process.exit(2);
}

const cores = os.availableParallelism();
const load = Array.from({ length: cores }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
const stopLoad = () => load.forEach((p) => p.kill('SIGKILL'));
process.on('exit', stopLoad);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
console.log(`test:load: ${cores} busy process(es) running beside the tests, ${runs} run(s)`);

const suites = filters.length > 0 ? filters : ['test/integration', 'test/faults'];
let failed = 0;
for (let run = 1; run <= runs; run++) {
  const code = await new Promise<number>((resolve) => {
    const vitest = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...suites], { stdio: 'inherit' });
    vitest.once('exit', (c, signal) => resolve(c ?? (signal === null ? 1 : 128)));
  });
  console.log(`test:load: run ${run} of ${runs}: ${code === 0 ? 'passed' : `failed (exit ${code})`}`);
  if (code !== 0) failed += 1;
}
stopLoad();
process.exit(failed === 0 ? 0 : 1);
