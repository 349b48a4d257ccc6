import { DelayedError, type Job } from 'bullmq';
import { type DeliveryDeps, deliverPending } from '../src/events/delivery.js';
import type { JobPayloads } from '../src/queue/jobs.js';

/**
 * Handles `deliver`: sends an endpoint's pending events (src/events/delivery.ts). When an
 * event fails, the job waits (moved to delayed) until its retry is due, holding its place:
 * while it waits, triggers for the endpoint join it rather than hammering the receiver.
 */
export async function handleDeliver(deps: DeliveryDeps, job: Job<JobPayloads['deliver']>, token?: string): Promise<string> {
  const outcome = await deliverPending(deps, job.data.endpointId);
  if (outcome.kind === 'retry') {
    await job.moveToDelayed(outcome.at.getTime(), token);
    throw new DelayedError();
  }
  return outcome.kind === 'disabled' ? `disabled: ${outcome.reason}` : `delivered ${outcome.delivered}`;
}
