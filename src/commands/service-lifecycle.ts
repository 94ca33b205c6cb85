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
