import type { DestructiveSet } from './approvals.js';
import type { LocalState, SkippedRecord, Snapshot } from './model.js';
import { type Plan, plan } from './plan.js';
import type { Policy } from './policy.js';
import { type GatedPlan, type RecentRemovals, type TenantCounts, gate, tooManySkipped, vanishedListings } from './safety.js';

export interface DecideInput {
  readonly local: LocalState;
  /** A complete snapshot (unread groups' members filled in). */
  readonly snapshot: Snapshot;
  readonly policy: Policy;
  readonly thresholdPercent: number | null;
  /** The tenant's counts before the run: the thresholds' bases. */
  readonly current: TenantCounts;
  /** Destructive operations earlier held runs wait on, and those an admin approved. */
  readonly pending: DestructiveSet;
  readonly approved: DestructiveSet;
  /**
   * The snapshot is what the IdP pushed (scim), not a listing read: an empty one is what the
   * IdP asked for, not a listing that vanished. Mass removals are caught by `recent` instead.
   */
  readonly pushed?: boolean;
  /** Removals applied in the sliding window before this run (scim); see SafetyContext.recent. */
  readonly recent?: RecentRemovals;
}

export type Decision =
  /** The read as a whole cannot be trusted: the run fails and changes nothing. */
  | { readonly kind: 'fail'; readonly reason: string }
  /** The full plan (what a dry run records), what applies now and what waits, and the records skipped. */
  | { readonly kind: 'plan'; readonly plan: Plan; readonly gated: GatedPlan; readonly skipped: readonly SkippedRecord[] };

/**
 * The decide step of a run (read, decide, apply): the plan, the safety gate and the approvals,
 * with no IO. Fails the run when more records were skipped than a few bad ones explain.
 */
export function decide(input: DecideInput): Decision {
  const suspicious = tooManySkipped(input.snapshot);
  if (suspicious) return { kind: 'fail', reason: suspicious };
  const planned = plan(input.local, input.snapshot, input.policy);
  const gated = gate(planned, {
    thresholdPercent: input.thresholdPercent,
    current: input.current,
    suspicious: input.pushed ? [...input.snapshot.suspicious] : vanishedListings(input.local, input.snapshot),
    pending: input.pending,
    approved: input.approved,
    unidentified: input.snapshot.skipped.filter((r) => r.kind === 'user' && r.externalId === null).length,
    ...(input.recent && { recent: input.recent }),
  });
  return { kind: 'plan', plan: planned, gated, skipped: planned.skipped };
}
