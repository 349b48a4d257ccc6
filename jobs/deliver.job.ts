import type { Job } from 'bullmq';
import { type DeliveryDeps, deliverPending } from '../src/events/delivery.js';
import type { JobPayloads } from '../src/queue/jobs.js';
import { type DirsyncQueue, enqueueDelivery } from '../src/queue/queue.js';

/**
 * Handles `deliver`: sends an endpoint's pending events (src/events/delivery.ts). The job
 * holds no state: one deliverer per endpoint is an advisory lock in Postgres, and a failed
 * event's next attempt time is recorded there, so the next trigger (a commit, or the sweep
 * every few seconds) sends it once due. A retry is also asked for as a job delayed until its
 * time, so it goes out then rather than at the next sweep; if Redis loses that job, the sweep
 * sends it a few seconds late. A killed worker or an emptied Redis loses nothing.
 */
export async function handleDeliver(deps: DeliveryDeps & { queue: DirsyncQueue }, job: Job<JobPayloads['deliver']>): Promise<string> {
  const outcome = await deliverPending(deps, job.data.endpointId);
  if (outcome.kind === 'retry') {
    await enqueueDelivery(deps.queue, job.data.endpointId, outcome.at);
    return `delivered ${outcome.delivered}; next attempt at ${outcome.at.toISOString()}`;
  }
  return outcome.kind === 'disabled' ? `disabled: ${outcome.reason}` : `delivered ${outcome.delivered}`;
}
