/** Every job dirsync puts on its queue, by name, with its payload. */
export interface JobPayloads {
  /** Run one recorded run (the runs row exists; the job id is the run id). */
  reconcile: { runId: string; integrationId: string };
  /** Fired by an integration's job scheduler: records a scheduled run and enqueues it. */
  'schedule-tick': { integrationId: string };
  /** Deliver an endpoint's pending events (the job id is deliveryJobId(endpointId): one per endpoint). */
  deliver: { endpointId: string };
}

export type JobName = keyof JobPayloads;
export const JOB_NAMES = ['reconcile', 'schedule-tick', 'deliver'] as const satisfies readonly JobName[];

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
