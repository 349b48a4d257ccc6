import type { RunChange, RunSummary } from '../db/run.repository.js';

export type ChangeState = 'applied' | 'planned' | 'skipped' | 'approved' | 'held';

/** What became of one change-log row, as the CLI and the dashboards show it. */
export function changeState(change: RunChange, run: Pick<RunSummary, 'dryRun' | 'approvedByRunId'>): ChangeState {
  if (change.applied) return 'applied';
  if (run.dryRun) return 'planned';
  if (change.detail?.skipped) return 'skipped';
  return run.approvedByRunId ? 'approved' : 'held';
}
