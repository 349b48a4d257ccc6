import type { Job } from 'bullmq';
import type { Config } from '../src/config.js';
import type { Db } from '../src/db/database.js';
import { NotFoundError, UserError } from '../src/errors.js';
import type { JobPayloads } from '../src/queue/jobs.js';
import { type DirsyncQueue, removeSchedule } from '../src/queue/queue.js';
import { requestRun } from '../src/runs/trigger.js';

/**
 * Handles `schedule-tick`: records a scheduled run (coalescing with any queued one) and enqueues
 * it. It reads what changed (incremental) unless a full run is due (SPEC `--full-every`).
 */
export async function handleScheduleTick(
  deps: { db: Db; config: Config; queue: DirsyncQueue },
  job: Job<JobPayloads['schedule-tick']>,
): Promise<string> {
  try {
    const { run, created } = await requestRun(deps, job.data.integrationId, 'schedule', { wish: { kind: 'auto' } });
    return created ? `queued run ${run.id}` : `coalesced into run ${run.id}`;
  } catch (error) {
    // A deleted integration's scheduler outlived it: remove it instead of failing every tick.
    if (error instanceof NotFoundError) {
      await removeSchedule(deps.queue, job.data.integrationId);
      return 'skipped: integration no longer exists';
    }
    if (error instanceof UserError) return `skipped: ${error.message}`;
    throw error;
  }
}
