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

export function schedulerId(integrationId: string): string {
  return `schedule-${integrationId}`;
}

/** One delivery job per endpoint at a time: a trigger while one waits or runs joins it. */
export function deliveryJobId(endpointId: string): string {
  return `deliver-${endpointId}`;
}
