import { DelayedError, type Job, UnrecoverableError, WaitingError } from 'bullmq';
import { RunInterruptedError } from '../src/runs/interruption.js';
import { type ReconcileDeps, reconcile } from '../src/runs/reconcile.js';
import type { JobPayloads } from '../src/queue/jobs.js';
import { observeRunDuration } from '../src/runs/run-metrics.js';

/**
 * How long a run waits, at most, when another run of its integration is in progress. It
 * looks again sooner while it is young (a quarter of its age, from BUSY_RETRY_MIN_MS): a
 * push arriving during a short run is applied within a few hundred milliseconds, not seconds.
 */
export const BUSY_RETRY_MS = 2_000;
export const BUSY_RETRY_MIN_MS = 100;

/**
 * Handles `reconcile`: runs the recorded run, and the job ends as the run did, so that the
 * queue's board tells the truth. A run that failed for good (the IdP, its data, credentials;
 * recorded with its reason) fails its job with UnrecoverableError: failed, with that reason,
 * and not retried, since the next run is the retry. A run held for approval completes its job
 * with `held: <why>`. Only an abandoned attempt (Postgres away; reconcile() throws) fails the
 * attempt for BullMQ to retry with backoff (src/queue/queue.ts enqueueRun). When the
 * integration already has a run in progress, the job steps aside (moved to delayed) rather
 * than running concurrently. A run interrupted by `signal` (shutdown) or taken over by another
 * attempt hands its job back or leaves it (see below).
 */
export async function handleReconcile(deps: ReconcileDeps, job: Job<JobPayloads['reconcile']>, token?: string, signal?: AbortSignal): Promise<string> {
  let outcome;
  try {
    outcome = await reconcile(deps, job.data.runId, signal);
  } catch (error) {
    if (!(error instanceof RunInterruptedError)) throw error;
    // Shutting down: the job goes back to waiting (no attempt used up) for the next worker, which
    // takes the run over at once (reconcile gave up this attempt). Superseded: another attempt
    // has the run (and the job, handed on after this worker stalled); leave it as it is.
    // If that fails (lock or Redis lost), the job's lock expires and BullMQ's stalled check hands it on.
    if (error.reason === 'shutdown') await job.moveToWait(token).catch(() => {});
    throw new WaitingError();
  }
  if (outcome.kind === 'busy') {
    const waited = Date.now() - job.timestamp;
    await job.moveToDelayed(Date.now() + Math.min(BUSY_RETRY_MS, Math.max(BUSY_RETRY_MIN_MS, waited / 4)), token);
    throw new DelayedError();
  }
  if (outcome.kind === 'skipped') return `skipped: ${outcome.reason}`;
  const { startedAt, finishedAt, status, error, heldReason } = outcome.run;
  if (startedAt && finishedAt) observeRunDuration(status, (Date.parse(finishedAt) - Date.parse(startedAt)) / 1000);
  if (status === 'failed') throw new UnrecoverableError(`run failed: ${error ?? 'no reason recorded'}`);
  if (status === 'held') return `held: ${heldReason ?? 'removals wait for approval'}`;
  return status;
}
