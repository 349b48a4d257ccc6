import type { Db } from '../../../src/db/database.js';
import type { RunPhase } from './figures.js';

/**
 * Where a run stands, seen from Postgres: ended; applying once one batch of its changes has
 * committed (every batch commits its change-log rows with it, src/apply/apply-plan.ts); reading
 * (or planning) before that.
 */
export async function runPhase(db: Db, runId: string): Promise<RunPhase> {
  const run = await db.selectFrom('runs').select('status').where('id', '=', runId).executeTakeFirstOrThrow();
  if (run.status !== 'running' && run.status !== 'queued') return 'after the run ended';
  const changes = await db.selectFrom('run_changes').select(db.fn.countAll<string>().as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow();
  return Number(changes.n) > 0 ? 'applying' : 'reading';
}
