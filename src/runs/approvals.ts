import { DestructiveSet, type DestructiveOp } from '../core/approvals.js';
import type { RunRepository, RunSummary } from '../db/run.repository.js';

/** What a run must respect of earlier held runs: what still waits, and what its approval covers. */
export interface ApprovalContext {
  /** Held by earlier runs and not approved by this one: later runs must not apply them behind the admin's back. */
  readonly pending: DestructiveSet;
  /** Approved by this run (an approval run): they bypass the threshold. */
  readonly approved: DestructiveSet;
  /** The held runs this approval covers. */
  readonly approvedRuns: readonly string[];
}

/**
 * Loads the held operations of the integration's held runs, split into those this run
 * approves (when it is an approval run: every held run up to the one approved) and the rest.
 */
export async function loadApprovals(runs: RunRepository, run: RunSummary): Promise<ApprovalContext> {
  const approvedRuns = run.approvesRunId ? await runs.heldRunsUpTo(run.approvesRunId) : [];
  const held = await runs.heldOpsByRun(run.integrationId);
  const approved = new DestructiveSet([...held].flatMap(([id, ops]) => (approvedRuns.includes(id) ? ops : [])));
  const pending = new DestructiveSet([...held].flatMap(([id, ops]) => (approvedRuns.includes(id) ? [] : ops)).filter((op) => !approved.has(op)));
  return { pending, approved, approvedRuns };
}

/**
 * After an approval run applied: records the approved operations the IdP no longer warrants
 * as skipped, and closes every held run the approval settled (those up to the approved one,
 * and later ones that held nothing more).
 */
export async function settleApprovals(
  runs: RunRepository,
  run: RunSummary,
  approvals: ApprovalContext,
  stale: readonly DestructiveOp[],
): Promise<void> {
  if (!run.approvesRunId) return;
  await runs.recordStale(run.id, stale, run.approvesRunId);
  const covered = await runs.heldRunsCoveredBy(run.integrationId, approvals.approved);
  await runs.markApproved([...new Set([...approvals.approvedRuns, ...covered])], run.id);
}
