import type { Logger } from '../log.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Objects to delete per query while trimming; bounds memory whatever the store's size. */
const BATCH = 256;

export interface RetentionOptions {
  /** Objects captured more than this many days ago are deleted. */
  retentionDays: number;
  /** Then the objects stored first are deleted until the store holds at most this many bytes. */
  quotaBytes: number;
  /**
   * Disk space to leave free (bytes): when the store can tell the free space of its disk, the quota is capped
   * at what it holds plus what is free less this reserve, so the configured quota never promises space the
   * disk does not have.
   */
  reserveBytes?: number;
  /** Epoch milliseconds; `Date.now()` when absent. */
  now?: number;
}

export interface RetentionResult {
  deletedForAge: number;
  deletedForQuota: number;
  bytesFreed: number;
  /** The quota this run applied: the configured one, or less when the free space capped it. */
  effectiveQuotaBytes: number;
}

/** What the hub's state reports about retention. */
export interface RetentionReport extends RetentionResult {
  /** Epoch milliseconds of the run. */
  lastRunAt: number;
  totalBytes: number;
  quotaBytes: number;
  objects: number;
}

/**
 * What retention needs of a store (ObjectStore is one). Declared here rather than picked from ObjectStore,
 * which applies retention itself on `put`: the two modules would otherwise import each other.
 */
export interface RetentionTarget {
  /** Objects captured before `before` oldest first, or all in the order they were stored. */
  list(query: { before?: number; order: 'oldest' | 'stored'; limit: number }): readonly { objectId: string; bytes: number }[];
  /** False when the object was already gone. */
  delete(objectId: string): boolean;
  totalBytes(): number;
  /** Removes events that ended before `cutoff` and have no object left. */
  pruneEvents(cutoff: number): unknown;
  /** Free space on the store's disk; undefined when it cannot tell. */
  freeBytes?(): number | undefined;
}

/**
 * Deletes objects captured before `now - retentionDays`, then the ones stored first until the total is at
 * most `quotaBytes`, then events that ended before the age cutoff and have no object left. Synchronous: no
 * `put` can commit in the middle of a run.
 *
 * Age is wall time, as docs/reliability.md's "Clocks" says: a day's retention is a day by the calendar, and a step
 * of the clock moves the cutoff by as much. The quota goes by the order of storing, not by capture time: a
 * step back would make the newest objects look the oldest, and the quota would take them first.
 */
export function applyRetention(store: RetentionTarget, options: RetentionOptions): RetentionResult {
  const now = options.now ?? Date.now();
  const cutoff = now - options.retentionDays * DAY_MS;
  const result: RetentionResult = { deletedForAge: 0, deletedForQuota: 0, bytesFreed: 0, effectiveQuotaBytes: options.quotaBytes };
  for (;;) {
    const batch = store.list({ before: cutoff, order: 'oldest', limit: BATCH });
    if (batch.length === 0) break;
    for (const object of batch) {
      if (store.delete(object.objectId)) {
        result.deletedForAge++;
        result.bytesFreed += object.bytes;
      }
    }
  }
  let total = store.totalBytes();
  const free = store.freeBytes?.();
  const cap = free === undefined ? Number.POSITIVE_INFINITY : total + free - (options.reserveBytes ?? 0);
  const quota = Math.max(0, Math.min(options.quotaBytes, cap));
  result.effectiveQuotaBytes = quota;
  while (total > quota) {
    const batch = store.list({ order: 'stored', limit: BATCH });
    if (batch.length === 0) break;
    for (const object of batch) {
      if (total <= quota) break;
      if (store.delete(object.objectId)) {
        result.deletedForQuota++;
        result.bytesFreed += object.bytes;
        total -= object.bytes;
      }
    }
  }
  store.pruneEvents(cutoff);
  return result;
}

/** A run's result with the store's state after it. */
export function retentionReport(store: Pick<RetentionTarget, 'totalBytes'> & { count(): number }, result: RetentionResult, quotaBytes: number, at: number): RetentionReport {
  return { ...result, lastRunAt: at, totalBytes: store.totalBytes(), quotaBytes, objects: store.count() };
}

/**
 * Applies retention now and every `intervalMs` until the returned function is called. A failed run is logged
 * and the next one tried; the timer does not keep the process alive. `onReport` receives each run's report
 * (for the hub's state).
 */
export function startRetentionTimer(
  store: RetentionTarget & { count(): number },
  options: Omit<RetentionOptions, 'now'> & { now?: () => number },
  intervalMs: number,
  logger: Logger,
  onReport?: (report: RetentionReport) => void,
): () => void {
  const clock = options.now ?? Date.now;
  const run = (): void => {
    try {
      const at = clock();
      const result = applyRetention(store, { retentionDays: options.retentionDays, quotaBytes: options.quotaBytes, reserveBytes: options.reserveBytes, now: at });
      const report = retentionReport(store, result, result.effectiveQuotaBytes, at);
      if (result.deletedForAge + result.deletedForQuota > 0) logger.info({ ...report }, 'store: retention deleted objects');
      onReport?.(report);
    } catch (error) {
      logger.error({ err: error }, 'store: retention run failed');
    }
  };
  const first = setImmediate(run);
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return () => {
    clearImmediate(first);
    clearInterval(timer);
  };
}
