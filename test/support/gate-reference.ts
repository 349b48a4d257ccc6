import { type DestructiveOp, DestructiveSet, destructive } from '../../src/core/approvals.js';
import type { GroupDelete, Membership, Plan, UserDeprovision } from '../../src/core/plan.js';
import { DEFAULT_THRESHOLD_PERCENT, type GatedPlan, MINIMUM_HELD, type SafetyContext } from '../../src/core/safety.js';

/**
 * The safety gate as it was before it was split into weigh (over a tally) and split (per
 * chunk), commit 8e38862, kept verbatim as the reference the split is checked against
 * (test/unit/safety.test.ts): a differential oracle, so a slip in the shared rules shows.
 */
export function referenceGate(plan: Plan, ctx: SafetyContext): GatedPlan {
  const approvedSeen = new DestructiveSet();
  const split = <T>(items: readonly T[], op: (item: T) => DestructiveOp) => {
    const approved: T[] = [];
    const pending: T[] = [];
    const other: T[] = [];
    for (const item of items) {
      const o = op(item);
      if (ctx.approved.has(o)) {
        approved.push(item);
        approvedSeen.add(o);
      } else if (ctx.pending.has(o)) pending.push(item);
      else other.push(item);
    }
    return { approved, pending, other };
  };
  const deprovisions = split(plan.usersDeprovisioned, destructive.deprovision);
  const deletions = split(plan.groupsDeleted, destructive.groupDelete);
  const removals = split(plan.membershipsRemoved, destructive.membershipRemove);

  const reasons: string[] = [];
  const pendingCount = deprovisions.pending.length + deletions.pending.length + removals.pending.length;
  if (pendingCount > 0) reasons.push(`${pendingCount} removals are still waiting for approval of an earlier held run`);
  const percent = ctx.thresholdPercent ?? DEFAULT_THRESHOLD_PERCENT;
  const exceeds = (n: number, base: number, recent: number, what: string, of: string): boolean => {
    if (n === 0) return false;
    const total = n + recent;
    const before = base + recent;
    if (!(total > MINIMUM_HELD && total > (before * percent) / 100)) return false;
    const window = recent > 0 ? ` (with ${recent} applied in the last ${describeWindow(ctx.recent!.windowMs)}, ${total} of the ${before} there were)` : '';
    reasons.push(`the plan ${what} ${n} of the tenant's ${base} ${of}${window}, more than the ${percent}% threshold`);
    return true;
  };
  const vanished = ctx.suspicious.length > 0;
  for (const why of ctx.suspicious) reasons.push(`${why}: held whatever the threshold`);
  const recent = ctx.recent ?? { windowMs: 0, deprovisions: 0, groupDeletions: 0, membershipRemovals: 0 };
  const holdUsers = exceeds(deprovisions.other.length, ctx.current.activeUsers, recent.deprovisions, 'deprovisions', 'active users') || vanished;
  // A record whose id could not be read may be any user missing from the read: their
  // deprovisions wait, but a readable status that deprovisions still applies.
  const unidentified = ctx.unidentified ?? 0;
  const holdMissing = !holdUsers && unidentified > 0 && deprovisions.other.some((d) => d.reason === 'out-of-scope');
  if (holdMissing) {
    reasons.push(`${unidentified} IdP record(s) without a readable id may be users missing from the read, so their deprovisions wait`);
  }
  const heldDeprovision = (d: UserDeprovision) => holdUsers || (holdMissing && d.reason === 'out-of-scope');
  const holdGroups = exceeds(deletions.other.length, ctx.current.groups, recent.groupDeletions, 'deletes', 'groups') || vanished;
  // Removals that go with an account follow its deprovision; they do not count on their own.
  const counted = removals.other.filter((m) => m.with !== 'account').length;
  const holdMembers = exceeds(counted, ctx.current.memberships, recent.membershipRemovals, 'removes', 'group memberships') || vanished;

  // A group deletion takes its memberships with it: held when either kind is.
  const heldGroups = new Set<string>();
  const appliedDeletions: GroupDelete[] = [...deletions.approved];
  const heldDeletions: GroupDelete[] = [...deletions.pending];
  for (const g of deletions.pending) heldGroups.add(g.externalId);
  for (const g of deletions.other) {
    if (holdGroups || (holdMembers && g.members > 0)) {
      heldDeletions.push(g);
      heldGroups.add(g.externalId);
    } else appliedDeletions.push(g);
  }
  const appliedDeprovisions: UserDeprovision[] = [...deprovisions.approved, ...deprovisions.other.filter((d) => !heldDeprovision(d))];
  const heldDeprovisions: UserDeprovision[] = [...deprovisions.pending, ...deprovisions.other.filter(heldDeprovision)];
  const heldAccounts = new Set(heldDeprovisions.map((d) => d.externalId));
  const appliedRemovals: Membership[] = [];
  const heldRemovals: Membership[] = [...removals.pending];
  const followsHeld = (m: Membership) =>
    (m.with === 'group' && heldGroups.has(m.groupExternalId)) || (m.with === 'account' && heldAccounts.has(m.userExternalId));
  for (const m of removals.approved) (followsHeld(m) ? heldRemovals : appliedRemovals).push(m);
  for (const m of removals.other) {
    const held = m.with === undefined ? holdMembers : followsHeld(m);
    (held ? heldRemovals : appliedRemovals).push(m);
  }

  const held: Plan = {
    usersCreated: [],
    usersUpdated: [],
    usersReprovisioned: [],
    // Their updates apply now (below): the held record has none left to make.
    usersDeprovisioned: heldDeprovisions.map(({ update: _applied, ...d }) => d),
    groupsCreated: [],
    groupsUpdated: [],
    groupsDeleted: heldDeletions,
    membershipsAdded: [],
    membershipsRemoved: heldRemovals,
    skipped: [],
  };
  // Updates are never held: a held deprovision's attribute changes (a rename with the
  // deactivation) apply now, and the deprovision refreshes nothing more once approved.
  const heldUpdates = heldDeprovisions.flatMap((d) => (d.update ? [d.update] : []));
  const apply: Plan = {
    ...plan,
    usersUpdated: [...plan.usersUpdated, ...heldUpdates],
    usersDeprovisioned: appliedDeprovisions,
    groupsDeleted: appliedDeletions,
    membershipsRemoved: appliedRemovals,
  };
  const stale = [...ctx.approved].filter((op) => !approvedSeen.has(op));
  return { apply, held, reasons: heldCount(held) > 0 ? reasons : [], stale };
}

function describeWindow(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes === 60 ? 'hour' : `${minutes} minutes`;
}

function heldCount(held: Plan): number {
  return held.usersDeprovisioned.length + held.groupsDeleted.length + held.membershipsRemoved.length;
}
