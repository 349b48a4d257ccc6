/** Every job dirsync puts on its queue, by name, with its payload. */
export interface JobPayloads {
  /** Run one recorded run (the runs row exists; the job id is the run id). */
  reconcile: { runId: string; integrationId: string };
  /** Fired by an integration's job scheduler: records a scheduled run and enqueues it. */
  'schedule-tick': { integrationId: string };
  /** Deliver an endpoint's pending events (the job id is deliveryJobId(endpointId): one per endpoint). */
  deliver: { endpointId: string };
  /** Fired hourly by the RETENTION_SCHEDULER_ID scheduler: deletes what DIRSYNC_RETENTION no longer keeps. */
  prune: Record<string, never>;
}

export type JobName = keyof JobPayloads;
export const JOB_NAMES = ['reconcile', 'schedule-tick', 'deliver', 'prune'] as const satisfies readonly JobName[];

/** The retention job's scheduler: one for the whole queue, not per integration (so not `schedule-`). */
export const RETENTION_SCHEDULER_ID = 'retention';

/** How the job schedulers of integrations are named in Redis: `schedule-<integration id>`. */
export const SCHEDULER_PREFIX = 'schedule-';

export function schedulerId(integrationId: string): string {
  return `${SCHEDULER_PREFIX}${integrationId}`;
}

/**
 * At most one delivery job per endpoint per second: triggers within the same second join it.
 * Not one per endpoint for good: a job left active by a killed worker must not hold off the next.
 */
export function deliveryJobId(endpointId: string, now = Date.now()): string {
  return `deliver-${endpointId}-${Math.floor(now / 1000)}`;
}
