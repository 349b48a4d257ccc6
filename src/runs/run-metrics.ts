import { Histogram } from 'prom-client';

/**
 * Run durations, observed where runs finish. In `dirsync start` runs finish in the worker
 * thread while /metrics is served by the main thread: the thread forwards each observation
 * (forwardRunDurations) and the main thread observes it here.
 */
export const runDuration = new Histogram({
  name: 'dirsync_run_duration_seconds',
  help: 'Duration of runs finished by this process (its worker thread included), by status',
  labelNames: ['status'],
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
  registers: [],
});

let forward: ((status: string, seconds: number) => void) | undefined;

/** Records a finished run's duration, here or in the process's main thread (forwardRunDurations). */
export function observeRunDuration(status: string, seconds: number): void {
  if (forward) forward(status, seconds);
  else runDuration.observe({ status }, seconds);
}

/** Sends this thread's run durations elsewhere (the worker thread of `dirsync start` to its main thread). */
export function forwardRunDurations(to: (status: string, seconds: number) => void): void {
  forward = to;
}
