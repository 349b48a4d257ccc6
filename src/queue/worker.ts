import { randomUUID } from 'node:crypto';
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
import { type DirsyncQueue, createQueue, ensureEnqueued, reconcileSchedules, scheduleRetention } from './queue.js';
import { WORKER_HEARTBEAT_MS, recordJobTaken, recordWorkerAlive, recordWorkerGone } from './liveness.js';
import { SHUTDOWN_REASON } from '../runs/interruption.js';
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
type Handlers = { [N in Exclude<JobName, 'deliver'>]: (job: Job<JobPayloads[N]>, token?: string, signal?: AbortSignal) => Promise<string> };

/**
 * A job's lock lasts LOCK_DURATION_MS and is renewed every half of it; a worker that dies holds
 * its jobs until the lock expires, and BullMQ's stalled check (every STALLED_INTERVAL_MS, on
 * any live worker) then hands them to the next worker: a killed worker's run is taken over
 * within about LOCK_DURATION_MS + 2 × STALLED_INTERVAL_MS = 30 s. Shorter locks would let an
 * event loop busy planning a large directory (seconds) miss its renewal and lose the job.
 */
export const LOCK_DURATION_MS = 20_000;
export const STALLED_INTERVAL_MS = 5_000;

/**
 * Starts a BullMQ worker with exactly one handler per job name (the Handlers type makes a
 * missing one a compile error). Before taking jobs it re-enqueues runs that were recorded but
 * whose job was lost (Redis restarted empty), re-creates schedules from Postgres and schedules
 * the hourly retention job (`prune`).
 */
export type DirsyncWorker = Worker<JobPayloads[JobName], string, JobName>;

export async function startWorker(deps: WorkerDeps): Promise<DirsyncWorker> {
  const handlers: Handlers = {
    reconcile: (job, token, signal) => handleReconcile(deps, job, token, signal),
    'schedule-tick': (job) => handleScheduleTick(deps, job),
    prune: (job) => handlePrune(deps, job),
  };
  await recover(deps);
  // BullMQ leaves a connection it was handed open on close; this one is ours to close.
  const connection = createRedis(deps.config.redisUrl, 'worker');
  const worker: DirsyncWorker = new Worker(
    deps.config.queueName,
    // Three parameters: BullMQ passes a job's abort signal only to a processor that takes one.
    async (job, token, signal) => {
      const handler = handlers[job.name as keyof Handlers] as ((job: Job, token?: string, signal?: AbortSignal) => Promise<string>) | undefined;
      if (!handler) throw new Error(`no handler for job ${job.name}`);
      return handler(job, token, signal);
    },
    {
      connection,
      concurrency: deps.concurrency ?? 4,
      // Long reads keep the job locked; the lock is renewed every lockDuration/2.
      lockDuration: LOCK_DURATION_MS,
      stalledInterval: STALLED_INTERVAL_MS,
    },
  );
  // A lost job lock alone does not stop the run: another worker that gets the job cannot claim
  // the run while this one's heartbeat in Postgres is fresh (it steps aside), and after Redis
  // restarted empty nobody else would run it. Postgres decides: once another attempt has
  // claimed the run, this one's next heartbeat finds out and stops it (RunRecorder.superseded).
  worker.on('lockRenewalFailed', (jobIds) => deps.log.warn({ jobIds }, 'lost the queue lock of running jobs; their runs go on while Postgres says they are theirs'));
  // /healthz counts live workers and notices when waiting jobs are not taken (src/queue/liveness.ts).
  const workerId = randomUUID();
  const alive = () => recordWorkerAlive(connection, deps.queue, workerId).catch(() => {});
  const heartbeat = setInterval(alive, WORKER_HEARTBEAT_MS);
  worker.on('active', () => void recordJobTaken(connection, deps.queue).catch(() => {}));
  // A run recorded while Redis was away, or whose job Redis lost, is put back on the queue;
  // schedules drifted from Postgres are repaired (pruning is the hourly `prune` job's).
  const sweeper = setInterval(() => {
    sweep(deps).catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'sweep failed'));
  }, deps.sweepEveryMs ?? 30_000);
  let stopDeliveries: (() => Promise<void>) | undefined;
  worker.on('closed', () => {
    clearInterval(sweeper);
    clearInterval(heartbeat);
    void stopDeliveries?.();
    void recordWorkerGone(connection, deps.queue, workerId)
      .catch(() => {})
      .finally(() => connection.disconnect());
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
  await Promise.all([alive(), recordJobTaken(connection, deps.queue).catch(() => {})]);
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

/**
 * The worker's periodic sweep (every `sweepEveryMs`, 30 s by default): re-enqueues runs recorded
 * in Postgres whose job is missing, and repairs the queue's schedulers from Postgres both ways
 * (restored, updated, removed; logged). Pruning is the hourly `prune` job's (runs/retention.ts).
 * Exported for tests.
 */
export async function sweep(deps: WorkerDeps): Promise<void> {
  await reenqueueQueued(deps, 10_000);
  await repairSchedules(deps);
}

async function recover(deps: WorkerDeps): Promise<void> {
  await new RunRepository(deps.db).failAbandoned();
  const requeued = await reenqueueQueued(deps, 0);
  await repairSchedules(deps);
  // Pruning past DIRSYNC_RETENTION: one hourly job for the queue, whichever worker takes it.
  await scheduleRetention(deps.queue);
  if (requeued > 0) deps.log.info({ runs: requeued }, 're-enqueued recorded runs');
}

/** Makes Redis's schedulers match Postgres (reconcileSchedules) and says what it repaired. */
async function repairSchedules(deps: WorkerDeps): Promise<void> {
  const repairs = await reconcileSchedules(deps.queue, () => new IntegrationRepository(deps.db).listSchedules());
  if (repairs.restored.length + repairs.updated.length + repairs.removed.length > 0) {
    deps.log.warn(repairs, 'schedules repaired from Postgres: restored missing, updated changed, removed stale schedulers');
  }
}

/** After SIGTERM, how long running jobs may take to finish on their own. */
export const SHUTDOWN_GRACE_MS = 5_000;
/** Then how long interrupted runs get to give up their attempt and hand their job back. */
export const INTERRUPT_GRACE_MS = 2_500;

/**
 * Stops a worker within about `graceMs + interruptMs` (SPEC: on SIGTERM a process stops taking
 * work and exits within 10 s): it takes no new jobs at once, lets running ones finish for
 * `graceMs`, then interrupts them (their runs stop at the next read or batch boundary, give up
 * the attempt and put the job back to waiting, so the next worker takes the run over at once).
 * Returns false if some job still had not stopped: the process may exit anyway; that job's lock
 * expires and BullMQ's stalled check hands it on (within about 30 s, LOCK_DURATION_MS).
 */
export async function stopWorker(worker: DirsyncWorker, log: Logger, graceMs = SHUTDOWN_GRACE_MS, interruptMs = INTERRUPT_GRACE_MS): Promise<boolean> {
  const closed = worker.close().then(() => true);
  const within = (ms: number) => Promise.race([closed, new Promise<false>((resolve) => setTimeout(resolve, ms, false).unref())]);
  if (await within(graceMs)) return true;
  log.warn({ graceMs }, 'runs still active after the shutdown grace; interrupting them for the next worker to take over');
  worker.cancelAllJobs(SHUTDOWN_REASON);
  if (await within(interruptMs)) return true;
  log.warn('a job did not stop in time; it is handed on once its lock expires');
  return false;
}
