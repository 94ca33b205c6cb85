// Maintenance: the registry mirror these machines use carries only the packages for this platform, so a
// fresh `npm install` leaves the other platforms' optional packages (rollup's native builds) out of the lock
// file and `npm ci` then refuses it. This adds an entry with os/cpu/libc for each missing one; npm ci skips
// them as incompatible, exactly as it would with full entries. Run after `npm install`: node .ci/lock-platform-stubs.mjs
import fs from 'node:fs';
const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
const pk = lock.packages;
const plat = (name) => {
  const m = name.match(/(android|darwin|freebsd|linux|openbsd|openharmony|win32|sunos|aix|netbsd)-([a-z0-9]+)(?:-(gnu|musl|msvc|gnueabihf|musleabihf|eabi))?$/);
  if (!m) return null;
  return { os: [m[1]], cpu: [m[2] === 'ia32' ? 'ia32' : m[2]], libc: m[1] !== 'linux' ? undefined : m[3] === 'gnu' || m[3]==='gnueabihf' ? ['glibc'] : m[3] === 'musl' || m[3]==='musleabihf' ? ['musl'] : undefined };
};
let added = 0;
for (const [path, meta] of Object.entries(pk)) {
  for (const [dep, ver] of Object.entries(meta.optionalDependencies ?? {})) {
    const base = path === '' ? 'node_modules/' : path + '/node_modules/';
    if (pk[base + dep] || pk['node_modules/' + dep]) continue;
    const p = plat(dep);
    if (!p) { console.log('no platform for', dep); continue; }
    const entry = { version: ver, dev: meta.dev, optional: true, os: p.os, cpu: p.cpu };
    if (p.libc) entry.libc = p.libc;
    if (!entry.dev) delete entry.dev;
    pk['node_modules/' + dep] = entry; added++;
    console.log('added', dep, ver, JSON.stringify(p));
  }
}
fs.writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
console.log('added', added);
