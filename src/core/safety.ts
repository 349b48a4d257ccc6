import type { GroupDelete, Membership, Plan, UserDeprovision } from './plan.js';
import { emptyPlan } from './plan.js';

/** Default share of the tenant's active users a run may deprovision without approval (Okta's own import safeguard). */
export const DEFAULT_THRESHOLD_PERCENT = 20;
/** Deprovisioning this many users or fewer never needs approval, whatever the share. */
export const MINIMUM_HELD_USERS = 5;

/** Change-log identity of a destructive operation: its kind and external id, as run_changes stores them. */
export type DestructiveKey = `${'user.deprovisioned' | 'group.deleted' | 'membership.removed'}:${string}`;

export function membershipId(m: Pick<Membership, 'groupExternalId' | 'userExternalId'>): string {
  return `${m.groupExternalId}/${m.userExternalId}`;
}

export const keyOf = {
  deprovision: (d: UserDeprovision): DestructiveKey => `user.deprovisioned:${d.externalId}`,
  groupDelete: (g: GroupDelete): DestructiveKey => `group.deleted:${g.externalId}`,
  membershipRemove: (m: Membership): DestructiveKey => `membership.removed:${membershipId(m)}`,
};

export interface SafetyContext {
  /** Share of active users above which deprovisions wait for approval; null means the default. */
  readonly thresholdPercent: number | null;
  /** The tenant's active users before this run. */
  readonly activeUsers: number;
  /** How many users the snapshot holds (zero while the tenant has users is suspicious). */
  readonly snapshotUsers: number;
  /** Destructive operations earlier held runs still wait on: later runs must not apply them behind the admin's back. */
  readonly pending: ReadonlySet<string>;
  /** Destructive operations an admin approved (an approval run); they bypass the threshold. */
  readonly approved: ReadonlySet<string>;
}

export interface GatedPlan {
  /** What applies now: every create and update, and the destructive operations that are safe or approved. */
  readonly apply: Plan;
  /** Destructive operations that wait for an admin's approval. */
  readonly held: Plan;
  /** Why anything is held, in words for the run record; empty when nothing is. */
  readonly reasons: readonly string[];
  /** Approved operations the fresh plan no longer contains (the IdP changed since): not applied. */
  readonly stale: readonly string[];
}

/**
 * Splits a plan into what may apply now and what must wait for approval (SPEC "Safety").
 * Creates and updates always apply: new hires are never blocked by a suspicious mass removal.
 */
export function gate(plan: Plan, ctx: SafetyContext): GatedPlan {
  const approvedSeen = new Set<string>();
  const classify = <T>(items: readonly T[], key: (item: T) => DestructiveKey) => {
    const approved: T[] = [];
    const pending: T[] = [];
    const other: T[] = [];
    for (const item of items) {
      const k = key(item);
      if (ctx.approved.has(k)) {
        approved.push(item);
        approvedSeen.add(k);
      } else if (ctx.pending.has(k)) pending.push(item);
      else other.push(item);
    }
    return { approved, pending, other };
  };
  const deprovisions = classify(plan.usersDeprovisioned, keyOf.deprovision);
  const groupDeletes = classify(plan.groupsDeleted, keyOf.groupDelete);
  const removals = classify(plan.membershipsRemoved, keyOf.membershipRemove);

  const reasons: string[] = [];
  const pendingCount = deprovisions.pending.length + groupDeletes.pending.length + removals.pending.length;
  if (pendingCount > 0) {
    reasons.push(`${pendingCount} removals are still waiting for approval of an earlier held run`);
  }
  const percent = ctx.thresholdPercent ?? DEFAULT_THRESHOLD_PERCENT;
  const count = deprovisions.other.length;
  let holdOthers = false;
  if (count > MINIMUM_HELD_USERS && count > (ctx.activeUsers * percent) / 100) {
    holdOthers = true;
    reasons.push(
      `the plan deprovisions ${count} of the tenant's ${ctx.activeUsers} active users, more than the ${percent}% threshold`,
    );
  }
  if (count > 0 && ctx.snapshotUsers === 0) {
    holdOthers = true;
    reasons.push(`the IdP returned no users at all, which would deprovision ${count}`);
  }

  const held = {
    ...emptyPlan(),
    usersDeprovisioned: [...deprovisions.pending, ...(holdOthers ? deprovisions.other : [])],
    groupsDeleted: [...groupDeletes.pending, ...(holdOthers ? groupDeletes.other : [])],
    membershipsRemoved: [...removals.pending, ...(holdOthers ? removals.other : [])],
  };
  const apply: Plan = {
    ...plan,
    usersDeprovisioned: [...deprovisions.approved, ...(holdOthers ? [] : deprovisions.other)],
    groupsDeleted: [...groupDeletes.approved, ...(holdOthers ? [] : groupDeletes.other)],
    membershipsRemoved: [...removals.approved, ...(holdOthers ? [] : removals.other)],
  };
  const stale = [...ctx.approved].filter((k) => !approvedSeen.has(k)).sort();
  return { apply, held, reasons, stale };
}
