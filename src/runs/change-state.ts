import type { RunChange, RunSummary } from '../db/run.repository.js';

/** What a change-log row shows: its stored state, with held changes of an approved run shown as approved. */
export type ChangeStateView = RunChange['state'] | 'approved';

/** What became of one change-log row, as the CLI and the dashboards show it. */
export function changeState(change: Pick<RunChange, 'state'>, run: Pick<RunSummary, 'approvedByRunId'>): ChangeStateView {
  return change.state === 'held' && run.approvedByRunId ? 'approved' : change.state;
}
