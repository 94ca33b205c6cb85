import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** One process as another local user could see it in /proc (its argv) and as the same user can (its environment). */
export interface SeenProcess {
  pid: number;
  /** Base name of argv[0]. */
  name: string;
  argv: string[];
  environ: string[];
}

/** Parent pid from /proc/<pid>/stat (the command name in parentheses may itself hold spaces and parentheses). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function nulSeparated(file: string): string[] {
  try {
    return readFileSync(file, 'latin1').split('\0').filter((s) => s !== '');
  } catch {
    return [];
  }
}

/** Every live descendant of `root` (default: this process), with its argv and environment. */
export function descendants(root: number = process.pid): SeenProcess[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = parentOf(Number(entry));
    if (ppid !== undefined) parents.set(Number(entry), ppid);
  }
  const mine = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  mine.delete(root);
  return [...mine].map((pid) => {
    const argv = nulSeparated(`/proc/${pid}/cmdline`);
    return { pid, name: path.basename(argv[0] ?? ''), argv, environ: nulSeparated(`/proc/${pid}/environ`) };
  });
}

/** Where `secrets`, or any `user:password@` userinfo, appear in a process's argv or environment. */
export function secretsIn(p: SeenProcess, secrets: readonly string[]): string[] {
  const found: string[] = [];
  for (const [where, values] of [['argv', p.argv], ['environ', p.environ]] as const) {
    for (const value of values) {
      for (const secret of secrets) if (value.includes(secret)) found.push(`${p.name}[${p.pid}] ${where} holds a secret`);
      if (/:\/\/[^/\s@]*:[^/\s@]*@/.test(value)) found.push(`${p.name}[${p.pid}] ${where} holds user:password@`);
    }
  }
  return found;
}
