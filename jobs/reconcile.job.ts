import { DelayedError, type Job } from 'bullmq';
import { type ReconcileDeps, reconcile } from '../src/runs/reconcile.js';
import type { JobPayloads } from '../src/queue/jobs.js';
import { runDuration } from '../src/runs/run-metrics.js';

/**
 * How long a run waits, at most, when another run of its integration is in progress. It
 * looks again sooner while it is young (a quarter of its age, from BUSY_RETRY_MIN_MS): a
 * push arriving during a short run is applied within a few hundred milliseconds, not seconds.
 */
export const BUSY_RETRY_MS = 2_000;
export const BUSY_RETRY_MIN_MS = 100;

/**
 * Handles `reconcile`: runs the recorded run. When the integration already has a run in
 * progress, the job steps aside (moved to delayed) rather than running concurrently.
 */
export async function handleReconcile(deps: ReconcileDeps, job: Job<JobPayloads['reconcile']>, token?: string): Promise<string> {
  const outcome = await reconcile(deps, job.data.runId);
  if (outcome.kind === 'busy') {
    const waited = Date.now() - job.timestamp;
    await job.moveToDelayed(Date.now() + Math.min(BUSY_RETRY_MS, Math.max(BUSY_RETRY_MIN_MS, waited / 4)), token);
    throw new DelayedError();
  }
  if (outcome.kind === 'finished') {
    const { startedAt, finishedAt, status } = outcome.run;
    if (startedAt && finishedAt) runDuration.observe({ status }, (Date.parse(finishedAt) - Date.parse(startedAt)) / 1000);
    return status;
  }
  return `skipped: ${outcome.reason}`;
}
