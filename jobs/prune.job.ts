import type { Job } from 'bullmq';
import type { Config } from '../src/config.js';
import type { Db } from '../src/db/database.js';
import type { Logger } from '../src/log.js';
import type { JobPayloads } from '../src/queue/jobs.js';
import { describePrune, pruneExpired } from '../src/runs/retention.js';

/**
 * Handles `prune` (fired hourly by the retention scheduler): deletes what DIRSYNC_RETENTION no
 * longer keeps (src/runs/retention.ts) and returns what went, e.g. "pruned 3 runs, 120
 * change-log rows"; the same is logged with the counts.
 */
export async function handlePrune(deps: { db: Db; config: Config; log: Logger }, _job: Job<JobPayloads['prune']>): Promise<string> {
  const report = await pruneExpired(deps.db, deps.config.retentionMs);
  const summary = describePrune(report);
  deps.log.info({ ...report, retentionMs: deps.config.retentionMs }, summary);
  return summary;
}
