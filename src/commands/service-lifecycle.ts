import { monotonicMs } from '../clock.js';
import type { Logger } from '../log.js';

/**
 * Resolves when the process is asked to stop (SIGINT, SIGTERM) or, if given, after `seconds`;
 * removes its signal handlers afterwards.
 */
export function untilStopRequested(seconds?: number): Promise<'signal' | 'timeout'> {
  return new Promise((resolve) => {
    const done = (why: 'signal' | 'timeout') => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (timer !== undefined) clearTimeout(timer);
      resolve(why);
    };
    const onSignal = () => done('signal');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const timer = seconds === undefined ? undefined : setTimeout(() => done('timeout'), seconds * 1000);
  });
}

/** At most this many stray errors are logged per minute; the rest are counted in the next line that is. */
const STRAY_LOG_PER_MINUTE = 20;

/**
 * Keeps the service alive through an unhandled promise rejection or an uncaught exception: each is logged
 * (`CAMVEIL_E_INTERNAL`, with the error) and the hub goes on, because a camera hub that exits on one stray
 * error loses the clip it holds in RAM and, under systemd's `Restart=on-failure`, crash-loops on a fault
 * that is still there after the restart. Returns a function that removes the handlers. The minute of the
 * log limit is elapsed time (`now`), so a clock set back does not mute stray errors for an hour.
 */
export function surviveStrayErrors(logger: Logger, now: () => number = monotonicMs): () => void {
  let windowStart = now();
  let logged = 0;
  let suppressed = 0;
  const report = (kind: 'unhandled rejection' | 'uncaught exception', error: unknown) => {
    if (now() - windowStart >= 60_000) {
      windowStart = now();
      logged = 0;
    }
    if (logged >= STRAY_LOG_PER_MINUTE) {
      suppressed += 1;
      return;
    }
    logged += 1;
    logger.error({ err: error, code: 'CAMVEIL_E_INTERNAL', ...(suppressed > 0 ? { suppressed } : {}) }, `${kind}; the hub keeps running`);
    suppressed = 0;
  };
  const onRejection = (reason: unknown) => report('unhandled rejection', reason);
  const onException = (error: unknown) => report('uncaught exception', error);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
