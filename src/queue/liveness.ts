import type { Redis } from 'ioredis';
import type { DirsyncQueue } from './queue.js';

/** How often each worker records that it is alive. */
export const WORKER_HEARTBEAT_MS = 10_000;

/** A worker not heard from for this long (three missed heartbeats) counts as gone. */
export const WORKER_SEEN_WITHIN_MS = 30_000;

/** Jobs waiting with none active for this long mean nobody takes work, though workers say they are alive. */
export const WAITING_UNTAKEN_MS = 60_000;

// Both live under the queue's own Redis prefix (bull:<queue>:...), beside BullMQ's keys.
const workersKey = (queue: DirsyncQueue) => queue.toKey('dirsync-workers');
const takenKey = (queue: DirsyncQueue) => queue.toKey('dirsync-last-taken');

/**
 * Records that worker `workerId` is alive now (a sorted set scored by time; entries a day old
 * are dropped on the way). Called every WORKER_HEARTBEAT_MS by each worker.
 */
export async function recordWorkerAlive(redis: Redis, queue: DirsyncQueue, workerId: string, now = Date.now()): Promise<void> {
  await redis.multi().zadd(workersKey(queue), now, workerId).zremrangebyscore(workersKey(queue), '-inf', now - 86_400_000).exec();
}

/** Forgets a worker that stopped cleanly, so that /healthz does not count it for the next 30 s. */
export async function recordWorkerGone(redis: Redis, queue: DirsyncQueue, workerId: string): Promise<void> {
  await redis.zrem(workersKey(queue), workerId);
}

/** Records that a worker took a job (or started, ready to take one) at `now`. */
export async function recordJobTaken(redis: Redis, queue: DirsyncQueue, now = Date.now()): Promise<void> {
  await redis.set(takenKey(queue), String(now));
}

export interface QueueHealth {
  /** Why the queue is not doing its work; empty when it is. */
  readonly reasons: string[];
  /** Workers heard from within WORKER_SEEN_WITHIN_MS. */
  readonly workers: number;
  readonly paused: boolean;
}

/**
 * Whether the runs' queue is doing its work, for /healthz: not paused, some worker alive (heard
 * from within WORKER_SEEN_WITHIN_MS), and not jobs waiting with none active and none taken for
 * WAITING_UNTAKEN_MS. A handful of cheap Redis commands (no listing of jobs or clients).
 */
export async function queueHealth(redis: Redis, queue: DirsyncQueue, now = Date.now()): Promise<QueueHealth> {
  const [paused, workers, counts, taken] = await Promise.all([
    queue.isPaused(),
    redis.zcount(workersKey(queue), now - WORKER_SEEN_WITHIN_MS, '+inf'),
    queue.getJobCounts('wait', 'prioritized', 'active'),
    redis.get(takenKey(queue)),
  ]);
  const reasons: string[] = [];
  if (paused) reasons.push('queue paused');
  if (workers === 0) reasons.push(`no worker seen in the last ${WORKER_SEEN_WITHIN_MS / 1000} s`);
  const waiting = (counts.wait ?? 0) + (counts.prioritized ?? 0);
  if (!paused && workers > 0 && waiting > 0 && (counts.active ?? 0) === 0 && taken !== null && now - Number(taken) > WAITING_UNTAKEN_MS) {
    reasons.push(`${waiting} job(s) waiting and none taken for over ${WAITING_UNTAKEN_MS / 1000} s`);
  }
  return { reasons, workers, paused };
}
