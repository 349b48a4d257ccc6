import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Integration, Schedule } from '../db/integration.repository.js';
import type { RunSummary } from '../db/run.repository.js';
import { type JobName, type JobPayloads, RETENTION_SCHEDULER_ID, SCHEDULER_PREFIX, deliveryJobId, schedulerId } from './jobs.js';

export type DirsyncQueue = Queue<JobPayloads[JobName], unknown, JobName>;

export function createQueue(name: string, connection: Redis): DirsyncQueue {
  return new Queue(name, {
    connection,
    defaultJobOptions: {
      removeOnComplete: { age: 7 * 86_400, count: 10_000 },
      // Failed runs' jobs are kept as their record on the board, within bounds like completed ones.
      removeOnFail: { age: 30 * 86_400, count: 10_000 },
    },
  });
}

/**
 * Puts a recorded run on the queue. The job id is the run id, so adding it again (a retried
 * trigger, recovery at start-up) is a no-op while the job exists.
 */
export async function enqueueRun(queue: DirsyncQueue, run: Pick<RunSummary, 'id' | 'integrationId'>): Promise<void> {
  await queue.add('reconcile', { runId: run.id, integrationId: run.integrationId }, {
    jobId: run.id,
    // Infrastructure failures (Postgres away) are retried; IdP failures end the run instead.
    attempts: 5,
    backoff: { type: 'exponential', delay: 2_000 },
  });
}

/**
 * Makes sure a run that is still queued in Postgres has a live job: re-adds a lost job, and
 * revives one that ended without running it (failed for good while Postgres was away).
 */
export async function ensureEnqueued(queue: DirsyncQueue, run: Pick<RunSummary, 'id' | 'integrationId'>): Promise<void> {
  const job = await queue.getJob(run.id);
  if (job) {
    const state = await job.getState();
    if (state === 'failed') return job.retry();
    if (state !== 'completed') return;
    await job.remove();
  }
  await enqueueRun(queue, run);
}

/** Makes the queue's job scheduler match the integration: one per enabled, scheduled integration. */
export async function syncSchedule(queue: DirsyncQueue, integration: Integration): Promise<void> {
  const id = schedulerId(integration.id);
  if (!integration.enabled || !integration.schedule) {
    await queue.removeJobScheduler(id);
    return;
  }
  await upsertScheduler(queue, integration.id, integration.schedule);
}

function repeatOf(schedule: Schedule): { every: number } | { pattern: string; tz: string } {
  return schedule.kind === 'every' ? { every: schedule.ms } : { pattern: schedule.pattern, tz: 'UTC' };
}

async function upsertScheduler(queue: DirsyncQueue, integrationId: string, schedule: Schedule): Promise<void> {
  // BullMQ types the scheduler id as the job-name type; any string is accepted at runtime.
  await queue.upsertJobScheduler(schedulerId(integrationId) as JobName, repeatOf(schedule), { name: 'schedule-tick', data: { integrationId } });
}

/** What reconcileSchedules changed in Redis, by integration id. */
export interface ScheduleRepairs {
  /** Scheduled in Postgres, no scheduler in Redis (removed on the board, Redis flushed): re-created. */
  readonly restored: string[];
  /** A scheduler whose every/pattern differed from Postgres's schedule: replaced. */
  readonly updated: string[];
  /** A scheduler of an integration deleted, disabled or unscheduled in Postgres: removed. */
  readonly removed: string[];
}

/**
 * Makes the queue's job schedulers match Postgres, level-based (SPEC "Operator safety": schedules
 * live in Postgres and the queue's schedulers are repaired from it continuously). `readDesired`
 * returns every enabled, scheduled integration (IntegrationRepository.listSchedules); it is
 * called after Redis is listed (see below). Costs one listing of the schedulers (BullMQ 6
 * `getJobSchedulers`) plus one write per drifted integration, none when nothing drifted.
 * Schedulers not named `schedule-<id>` (another feature's) are left alone.
 */
export async function reconcileSchedules(queue: DirsyncQueue, readDesired: () => Promise<readonly { id: string; schedule: Schedule }[]>): Promise<ScheduleRepairs> {
  // Redis first, then Postgres: every writer (CLI, API, console) updates Postgres before Redis,
  // so a scheduler seen here is backed by a row at least as new in the read that follows.
  const schedulers = (await queue.getJobSchedulers(0, -1)).filter((s) => s.key.startsWith(SCHEDULER_PREFIX));
  const desired = await readDesired();
  const inRedis = new Map(schedulers.map((s) => [s.key.slice(SCHEDULER_PREFIX.length), s]));
  const repairs: ScheduleRepairs = { restored: [], updated: [], removed: [] };
  for (const { id, schedule } of desired) {
    const current = inRedis.get(id);
    inRedis.delete(id);
    if (current && matches(current, schedule)) continue;
    await upsertScheduler(queue, id, schedule);
    (current ? repairs.updated : repairs.restored).push(id);
  }
  for (const id of inRedis.keys()) {
    await queue.removeJobScheduler(schedulerId(id));
    repairs.removed.push(id);
  }
  return repairs;
}

function matches(scheduler: { every?: number; pattern?: string; tz?: string }, schedule: Schedule): boolean {
  if (schedule.kind === 'every') return scheduler.every === schedule.ms && !scheduler.pattern;
  return scheduler.pattern === schedule.pattern && (scheduler.tz ?? 'UTC') === 'UTC' && !scheduler.every;
}

/** How often the retention job runs: hourly keeps each pass small. */
export const PRUNE_EVERY_MS = 3_600_000;

/** Makes sure the hourly retention job (`prune`) is scheduled; the same id each time, so repeating is a no-op. */
export async function scheduleRetention(queue: DirsyncQueue): Promise<void> {
  await queue.upsertJobScheduler(RETENTION_SCHEDULER_ID as JobName, { every: PRUNE_EVERY_MS }, { name: 'prune', data: {} });
}

export async function removeSchedule(queue: DirsyncQueue, integrationId: string): Promise<void> {
  await queue.removeJobScheduler(schedulerId(integrationId));
}

/**
 * Asks for an endpoint's pending events to be delivered (see deliveryJobId), now or at `at` (a
 * retry's time). Jobs are removed
 * once done; one that finds another deliverer at work returns at once (src/events/delivery.ts).
 */
export async function enqueueDelivery(queue: DirsyncQueue, endpointId: string, at?: Date): Promise<void> {
  const delay = at ? Math.max(0, at.getTime() - Date.now()) : 0;
  await queue.add('deliver', { endpointId }, { jobId: deliveryJobId(endpointId, at?.getTime()), delay, removeOnComplete: true, removeOnFail: true });
}
