import { DestructiveSet, type DestructiveOp } from '../core/approvals.js';
import type { RunRepository, RunSummary } from '../db/run.repository.js';

/** What a run must respect of earlier held runs: what still waits, and what its approval covers. */
export interface ApprovalContext {
  /** Held by earlier runs and not approved by this one: later runs must not apply them behind the admin's back. */
  readonly pending: DestructiveSet;
  /** Approved by this run (an approval run): they bypass the threshold. */
  readonly approved: DestructiveSet;
  /**
   * The held runs this approval settles: every held run up to the approved one, and later ones
   * that held nothing beyond what it approves (they held the same removals again meanwhile).
   */
  readonly approvedRuns: readonly string[];
}

/**
 * Loads the held operations of the integration's held runs, split into those this run
 * approves (when it is an approval run: every held run up to the one approved) and the rest.
 */
export async function loadApprovals(runs: RunRepository, run: RunSummary): Promise<ApprovalContext> {
  const upTo = run.approvesRunId ? await runs.heldRunsUpTo(run.approvesRunId) : [];
  const held = await runs.heldOpsByRun(run.integrationId);
  const approved = new DestructiveSet([...held].flatMap(([id, ops]) => (upTo.includes(id) ? ops : [])));
  const pending = new DestructiveSet([...held].flatMap(([id, ops]) => (upTo.includes(id) ? [] : ops)).filter((op) => !approved.has(op)));
  const covered = upTo.length === 0 ? [] : [...held].filter(([, ops]) => ops.every((op) => approved.has(op))).map(([id]) => id);
  return { pending, approved, approvedRuns: [...new Set([...upTo, ...covered])] };
}

/**
 * After an approval run applied: records the approved operations the IdP no longer warrants
 * as skipped, and closes every held run the approval settled (those up to the approved one,
 * and later ones that held nothing more). Returns how many approved operations the run found
 * stale, counting what an earlier attempt of it recorded (0 for a run that approves nothing).
 */
export async function settleApprovals(
  runs: RunRepository,
  run: RunSummary,
  approvals: ApprovalContext,
  stale: readonly DestructiveOp[],
): Promise<number> {
  if (!run.approvesRunId) return 0;
  const recorded = await runs.recordStale(run.id, stale, run.approvesRunId);
  await runs.markApproved(approvals.approvedRuns, run.id);
  return recorded;
}
