import { Histogram } from 'prom-client';

/** Run durations observed by the worker in this process; /metrics of the same process shows them. */
export const runDuration = new Histogram({
  name: 'dirsync_run_duration_seconds',
  help: 'Duration of runs processed by this process, by outcome',
  labelNames: ['status'],
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
  registers: [],
});
