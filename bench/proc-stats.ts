import { readdirSync, readFileSync } from 'node:fs';

/** Linux reports process CPU times in clock ticks; 100 per second on every mainstream kernel build. */
const CLOCK_TICKS = 100;

interface ProcSample {
  pid: number;
  comm: string;
  ppid: number;
  /** user + system CPU seconds so far */
  cpuSeconds: number;
  rssBytes: number;
}

function readProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may hold spaces: split after the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    const ppid = Number(fields[1]);
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    const statm = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
    const rssBytes = Number(statm[1]) * 4096;
    return { pid, comm, ppid, cpuSeconds, rssBytes };
  } catch {
    return undefined;
  }
}

/** The live child processes of `parent` (one level), as read from /proc. */
export function childProcesses(parent: number = process.pid): ProcSample[] {
  const out: ProcSample[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const sample = readProc(Number(name));
    if (sample !== undefined && sample.ppid === parent) out.push(sample);
  }
  return out;
}

export function processSample(pid: number): ProcSample | undefined {
  return readProc(pid);
}

/**
 * Accumulates CPU time of a changing set of processes: a process's CPU counts from the first time it is
 * seen (or from a baseline taken at `start`), so restarts during a run are not lost.
 */
export class CpuMeter {
  readonly #first = new Map<number, number>();
  readonly #last = new Map<number, number>();

  observe(samples: readonly ProcSample[]): void {
    for (const s of samples) {
      if (!this.#first.has(s.pid)) this.#first.set(s.pid, s.cpuSeconds);
      this.#last.set(s.pid, s.cpuSeconds);
    }
  }

  get cpuSeconds(): number {
    let total = 0;
    for (const [pid, last] of this.#last) total += last - (this.#first.get(pid) ?? last);
    return total;
  }
}
