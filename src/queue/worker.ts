import { type Job, Worker } from 'bullmq';
import pRetry from 'p-retry';
import { handleReconcile } from '../../jobs/reconcile.job.js';
import { handleScheduleTick } from '../../jobs/schedule-tick.job.js';
import { handleDeliver } from '../../jobs/deliver.job.js';
import { handlePrune } from '../../jobs/prune.job.js';
import { startDeliveryTrigger } from '../events/delivery-trigger.js';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { IntegrationRepository } from '../db/integration.repository.js';
import type { Logger } from '../log.js';
import type { ReconcileDeps } from '../runs/reconcile.js';
import type { JobName, JobPayloads } from './jobs.js';
import { type DirsyncQueue, createQueue, ensureEnqueued, scheduleRetention, syncSchedule } from './queue.js';
import { createRedis } from './redis.js';
import { RunRepository } from '../db/run.repository.js';

export interface WorkerDeps extends Omit<ReconcileDeps, 'log'> {
  readonly db: Db;
  readonly config: Config;
  readonly log: Logger;
  readonly queue: DirsyncQueue;
  readonly concurrency?: number;
  readonly sweepEveryMs?: number;
}

/** Every job of the runs' queue; `deliver` jobs live on the deliveries queue (startDeliveries). */
type Handlers = { [N in Exclude<JobName, 'deliver'>]: (job: Job<JobPayloads[N]>, token?: string) => Promise<string> };

/**
 * Starts a BullMQ worker with exactly one handler per job name (the Handlers type makes a
 * missing one a compile error). Before taking jobs it re-enqueues runs that were recorded but
 * whose job was lost (Redis restarted empty), re-creates schedules from Postgres and schedules
 * the hourly retention job (`prune`).
 */
export type DirsyncWorker = Worker<JobPayloads[JobName], string, JobName>;

export async function startWorker(deps: WorkerDeps): Promise<DirsyncWorker> {
  const handlers: Handlers = {
    reconcile: (job, token) => handleReconcile(deps, job, token),
    'schedule-tick': (job) => handleScheduleTick(deps, job),
    prune: (job) => handlePrune(deps, job),
  };
  await recover(deps);
  // BullMQ leaves a connection it was handed open on close; this one is ours to close.
  const connection = createRedis(deps.config.redisUrl, 'worker');
  const worker: DirsyncWorker = new Worker(
    deps.config.queueName,
    async (job, token) => {
      const handler = handlers[job.name as keyof Handlers] as ((job: Job, token?: string) => Promise<string>) | undefined;
      if (!handler) throw new Error(`no handler for job ${job.name}`);
      return handler(job, token);
    },
    {
      connection,
      concurrency: deps.concurrency ?? 4,
      // Long reads keep the job locked; the lock is renewed every lockDuration/2.
      lockDuration: 60_000,
    },
  );
  // A run recorded while Redis was away, or whose job Redis lost, is put back on the queue.
  const sweeper = setInterval(() => {
    sweep(deps).catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'sweep failed'));
  }, deps.sweepEveryMs ?? 30_000);
  let stopDeliveries: (() => Promise<void>) | undefined;
  worker.on('closed', () => {
    clearInterval(sweeper);
    void stopDeliveries?.();
    connection.disconnect();
  });
  // Redis may come back empty (restarted without persistence): put back what Postgres knows,
  // the recorded runs' jobs and every schedule, each time the connection is made again.
  let connections = 0;
  connection.on('ready', () => {
    if (++connections === 1) return;
    pRetry(() => recover(deps), { retries: 5, minTimeout: 500 })
      .then(() => deps.log.info('redis is back: recorded runs re-enqueued and schedules re-created'))
      .catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'could not restore the queue after redis came back'));
  });
  worker.on('failed', (job, error) => deps.log.error({ jobId: job?.id, job: job?.name, err: error.message }, 'job failed'));
  worker.on('error', (error) => deps.log.warn({ err: error.message }, 'worker connection problem; retrying'));
  await worker.waitUntilReady();
  // Only now: the 'ready' count above must see the connection's first ready event.
  stopDeliveries = await startDeliveries(deps);
  deps.log.info({ queue: deps.config.queueName, concurrency: deps.concurrency ?? 4 }, 'worker started');
  return worker;
}

/**
 * Event deliveries: a queue and a worker of their own (`<DIRSYNC_QUEUE>-deliveries`), so a
 * slow endpoint never takes a slot a run needs; started as events commit (LISTEN/NOTIFY) and
 * every few seconds. Returns a function that stops them.
 */
async function startDeliveries(deps: WorkerDeps): Promise<() => Promise<void>> {
  const name = `${deps.config.queueName}-deliveries`;
  const queueConnection = createRedis(deps.config.redisUrl, 'client');
  const workerConnection = createRedis(deps.config.redisUrl, 'worker');
  const queue = createQueue(name, queueConnection);
  const worker = new Worker<JobPayloads['deliver'], string>(name, (job) => handleDeliver({ ...deps, queue }, job as Job<JobPayloads['deliver']>), {
    connection: workerConnection,
    concurrency: 8,
    lockDuration: 60_000,
  });
  worker.on('error', (error) => deps.log.warn({ err: error.message }, 'delivery worker connection problem; retrying'));
  worker.on('failed', (job, error) => deps.log.error({ jobId: job?.id, err: error.message }, 'delivery job failed'));
  const stopTrigger = await startDeliveryTrigger({ db: deps.db, databaseUrl: deps.config.databaseUrl, queue, log: deps.log });
  return async () => {
    await stopTrigger();
    await worker.close();
    await queue.close();
    queueConnection.disconnect();
    workerConnection.disconnect();
  };
}

/** Makes sure every run queued in Postgres for at least `olderThanMs` has a live job. */
async function reenqueueQueued(deps: WorkerDeps, olderThanMs: number): Promise<number> {
  const queued = await new RunRepository(deps.db).listQueued(olderThanMs);
  for (const run of queued) await ensureEnqueued(deps.queue, run);
  return queued.length;
}

async function sweep(deps: WorkerDeps): Promise<void> {
  await reenqueueQueued(deps, 10_000);
}

async function recover(deps: WorkerDeps): Promise<void> {
  await new RunRepository(deps.db).failAbandoned();
  const requeued = await reenqueueQueued(deps, 0);
  for (const integration of await new IntegrationRepository(deps.db).list()) await syncSchedule(deps.queue, integration);
  // Pruning past DIRSYNC_RETENTION: one hourly job for the queue, whichever worker takes it.
  await scheduleRetention(deps.queue);
  if (requeued > 0) deps.log.info({ runs: requeued }, 're-enqueued recorded runs');
}
