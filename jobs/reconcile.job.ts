import { DelayedError, type Job } from 'bullmq';
import { type ReconcileDeps, reconcile } from '../src/runs/reconcile.js';
import type { JobPayloads } from '../src/queue/jobs.js';
import { runDuration } from '../src/runs/run-metrics.js';

/** How long a run waits when another run of its integration is in progress. */
export const BUSY_RETRY_MS = 2_000;

/**
 * Handles `reconcile`: runs the recorded run. When the integration already has a run in
 * progress, the job steps aside (moved to delayed) rather than running concurrently.
 */
export async function handleReconcile(deps: ReconcileDeps, job: Job<JobPayloads['reconcile']>, token?: string): Promise<string> {
  const outcome = await reconcile(deps, job.data.runId);
  if (outcome.kind === 'busy') {
    await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
    throw new DelayedError();
  }
  if (outcome.kind === 'finished') {
    const { startedAt, finishedAt, status } = outcome.run;
    if (startedAt && finishedAt) runDuration.observe({ status }, (Date.parse(finishedAt) - Date.parse(startedAt)) / 1000);
    return status;
  }
  return `skipped: ${outcome.reason}`;
}
