/**
 * Why a run stops before its end without failing:
 * - `shutdown`: the worker is stopping (SIGTERM); the attempt is given up and its job handed
 *   back, so the next worker takes the run over at once.
 * - `superseded`: the run is no longer this attempt's (another worker took it over after a
 *   stale heartbeat); it stops writing and touches nothing more.
 */
export type InterruptReason = 'shutdown' | 'superseded';

/** The abort reason a worker gives BullMQ's `cancelAllJobs` when it shuts down. */
export const SHUTDOWN_REASON = 'shutdown';

export class RunInterruptedError extends Error {
  override name = 'RunInterruptedError';
  constructor(readonly reason: InterruptReason) {
    super(reason === 'shutdown' ? 'the worker is shutting down' : 'the run was taken over by another attempt');
  }
}

/** The interruption an aborted signal stands for: a signal aborted with SHUTDOWN_REASON is a shutdown, any other a lost run. */
function interruption(signal: AbortSignal): RunInterruptedError {
  const reason = signal.reason;
  if (reason instanceof RunInterruptedError) return reason;
  return new RunInterruptedError(reason === SHUTDOWN_REASON ? 'shutdown' : 'superseded');
}

/** Throws RunInterruptedError if `signal` is aborted: called between steps that write. */
export function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw interruption(signal);
}

/**
 * `promise`, or RunInterruptedError as soon as `signal` aborts: a run blocked on a slow IdP read
 * stops at once (the read goes on unobserved; its result is dropped).
 */
export function untilInterrupted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(interruption(signal));
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(interruption(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
