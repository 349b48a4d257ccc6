import { type DestructiveOp, DestructiveSet, destructive } from './approvals.js';
import type { LocalState, SkippedRecord } from './model.js';
import type { GroupDelete, Membership, Plan, UserDeprovision } from './plan.js';

/** Default share of a kind's current count a run may remove without approval (Okta's own import safeguard is 20%). */
export const DEFAULT_THRESHOLD_PERCENT = 20;
/** Removing this many of a kind or fewer never needs approval, whatever the share. */
export const MINIMUM_HELD = 5;
/** Skipped records a run tolerates: more than max(this, 1% of the scope) fail it as suspicious (SPEC "Safety"). */
export const MINIMUM_SUSPICIOUS_SKIPS = 10;

/** The tenant's counts before a run: each destructive kind's threshold is a share of its count. */
export interface TenantCounts {
  readonly activeUsers: number;
  readonly groups: number;
  readonly memberships: number;
}

export interface SafetyContext {
  /** Share of each kind above which its removals wait for approval; null means the default. */
  readonly thresholdPercent: number | null;
  readonly current: TenantCounts;
  /** Why the read looks like a listing that vanished: every destructive operation is held, whatever the threshold. */
  readonly suspicious: readonly string[];
  /** Destructive operations earlier held runs still wait on: later runs must not apply them behind the admin's back. */
  readonly pending: DestructiveSet;
  /** Destructive operations an admin approved (an approval run); they bypass the threshold. */
  readonly approved: DestructiveSet;
  /** Skipped user records whose id could not be read: any user missing from the read may be one. */
  readonly unidentified?: number;
  /**
   * Removals the integration applied within the sliding window before this run (scim: pushes
   * arrive one by one, so a mass deactivation is many small runs). They count towards each
   * kind's threshold, on the counts as they were before them.
   */
  readonly recent?: RecentRemovals;
}

/** Destructive operations applied within a recent window, by kind (see SafetyContext.recent). */
export interface RecentRemovals {
  readonly windowMs: number;
  readonly deprovisions: number;
  readonly groupDeletions: number;
  /** Membership removals that count on their own (those that went with a deprovision do not). */
  readonly membershipRemovals: number;
}

export interface GatedPlan {
  /** What applies now: every create and update, and the destructive operations that are safe or approved. */
  readonly apply: Plan;
  /** Destructive operations that wait for an admin's approval. */
  readonly held: Plan;
  /** Why anything is held, in words for the run record; empty when nothing is. */
  readonly reasons: readonly string[];
  /** Approved operations the fresh plan no longer contains (the IdP changed since): not applied. */
  readonly stale: readonly DestructiveOp[];
}

/**
 * Why a complete read still cannot be trusted to remove anything (SPEC "Safety": a listing
 * that comes back empty, or a scope that vanished): the connector's own suspicions, and a
 * users or groups listing that is empty while this integration's tenant state is not.
 */
export function vanishedListings(local: LocalState, snapshot: ListingSizes): string[] {
  return vanishedFrom({ activeUsers: [...local.users.values()].filter((u) => u.active).length, groups: local.groups.size }, snapshot);
}

/**
 * The sizes of a read that the safety checks weigh: a Snapshot has them, and a staged read
 * (src/runs/staged-read.ts) gives its counts in the same shape.
 */
export interface ListingSizes {
  readonly users: { readonly size: number };
  readonly groups: { readonly size: number };
  readonly skipped: readonly SkippedRecord[];
  readonly suspicious: readonly string[];
}

/** vanishedListings, for a tenant state known by its counts: the integration's active accounts and groups. */
export function vanishedFrom(local: { readonly activeUsers: number; readonly groups: number }, snapshot: ListingSizes): string[] {
  const reasons = [...snapshot.suspicious];
  const skippedOf = (kind: 'user' | 'group') => snapshot.skipped.filter((r) => r.kind === kind).length;
  if (snapshot.users.size + skippedOf('user') === 0 && local.activeUsers > 0) {
    reasons.push(`the IdP listed no users at all, while the tenant has ${local.activeUsers} active users from it`);
  }
  if (snapshot.groups.size + skippedOf('group') === 0 && local.groups > 0) {
    reasons.push(`the IdP listed no groups at all, while the tenant has ${local.groups} groups from it`);
  }
  return reasons;
}

/**
 * More skipped records than a few bad ones (max(10, 1% of the scope)) means something is wrong
 * with the read as a whole: the sentence to fail the run with, or undefined.
 */
export function tooManySkipped(snapshot: ListingSizes): string | undefined {
  const scope = snapshot.users.size + snapshot.groups.size + snapshot.skipped.length;
  const limit = Math.max(MINIMUM_SUSPICIOUS_SKIPS, Math.floor(scope / 100));
  if (snapshot.skipped.length <= limit) return undefined;
  const examples = snapshot.skipped.slice(0, 3).map((r) => r.reason).join('; ');
  return `${snapshot.skipped.length} of ${scope} IdP records cannot be taken as they are, more than the ${limit} a run tolerates, so the read is suspicious (for example: ${examples})`;
}

/**
 * Splits a plan into what may apply now and what must wait for approval (SPEC "Safety").
 * Every destructive kind is guarded on its own: user deprovisions against active users, group
 * deletions against groups, membership removals (those a deleted group takes along included)
 * against memberships; a kind is held when it removes more than the threshold's share *and*
 * more than MINIMUM_HELD. A deleted group and the removals it takes along are held or applied
 * together. Creates and updates always apply: new hires are never blocked.
 *
 * The same as `weigh` over the plan's tally, then `split`: a plan too large to hold whole is
 * gated chunk by chunk that way (src/runs/staged-run.ts).
 */
export function gate(plan: Plan, ctx: SafetyContext): GatedPlan {
  const verdict = weigh(tallyDestructive(plan, ctx), plan.groupsDeleted, ctx);
  const { apply, held, approvedSeen } = split(plan, verdict, ctx);
  const seen = new DestructiveSet();
  for (const op of approvedSeen) seen.add(op);
  return { apply, held, reasons: heldCount(held) > 0 ? verdict.reasons : [], stale: staleApprovals(ctx, seen) };
}

/**
 * What weighing a plan's destructive operations needs, as counts that add up chunk by chunk
 * (addTallies): the operations neither approved nor waiting on an earlier held run, per kind,
 * and those waiting.
 */
export interface DestructiveTally {
  /** Operations of any kind an earlier held run waits on. */
  readonly pending: number;
  /** User deprovisions, and of them those of users who left the scope. */
  readonly deprovisions: number;
  readonly outOfScope: number;
  /** Membership removals that count on their own (not those going with an account). */
  readonly removals: number;
}

/** A plan's tally (see DestructiveTally); group deletions are weighed whole (weigh's `groupsDeleted`). */
export function tallyDestructive(plan: Plan, ctx: Pick<SafetyContext, 'approved' | 'pending'>): DestructiveTally {
  let pending = 0;
  let deprovisions = 0;
  let outOfScope = 0;
  let removals = 0;
  const other = (op: DestructiveOp) => {
    if (ctx.approved.has(op)) return false;
    if (ctx.pending.has(op)) pending += 1;
    return !ctx.pending.has(op);
  };
  for (const d of plan.usersDeprovisioned) {
    if (!other(destructive.deprovision(d))) continue;
    deprovisions += 1;
    if (d.reason === 'out-of-scope') outOfScope += 1;
  }
  for (const g of plan.groupsDeleted) other(destructive.groupDelete(g));
  for (const m of plan.membershipsRemoved) if (other(destructive.membershipRemove(m)) && m.with !== 'account') removals += 1;
  return { pending, deprovisions, outOfScope, removals };
}

export function addTallies(a: DestructiveTally, b: DestructiveTally): DestructiveTally {
  return { pending: a.pending + b.pending, deprovisions: a.deprovisions + b.deprovisions, outOfScope: a.outOfScope + b.outOfScope, removals: a.removals + b.removals };
}

export const EMPTY_TALLY: DestructiveTally = { pending: 0, deprovisions: 0, outOfScope: 0, removals: 0 };

/** What the gate decided for a whole plan (weigh): which kinds wait, and why; `split` applies it to any part of the plan. */
export interface GateVerdict {
  readonly holdUsers: boolean;
  /** Deprovisions of users who left the scope wait: a record without a readable id may be one of them. */
  readonly holdMissing: boolean;
  readonly holdMembers: boolean;
  /** Groups whose deletion waits, with the removals they take along. */
  readonly heldGroups: ReadonlySet<string>;
  /** Why, in words, when anything is held. */
  readonly reasons: readonly string[];
}

/**
 * Decides from the whole plan's tally (and its group deletions, which are few) which kinds
 * wait for approval: gate's rules, without the operations themselves.
 */
export function weigh(tally: DestructiveTally, groupsDeleted: readonly GroupDelete[], ctx: SafetyContext): GateVerdict {
  const reasons: string[] = [];
  const deletions = groupsDeleted.filter((g) => !ctx.approved.has(destructive.groupDelete(g)));
  const pendingDeletions = deletions.filter((g) => ctx.pending.has(destructive.groupDelete(g)));
  const otherDeletions = deletions.filter((g) => !ctx.pending.has(destructive.groupDelete(g)));
  if (tally.pending > 0) reasons.push(`${tally.pending} removals are still waiting for approval of an earlier held run`);
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
  const holdUsers = exceeds(tally.deprovisions, ctx.current.activeUsers, recent.deprovisions, 'deprovisions', 'active users') || vanished;
  // A record whose id could not be read may be any user missing from the read: their
  // deprovisions wait, but a readable status that deprovisions still applies.
  const unidentified = ctx.unidentified ?? 0;
  const holdMissing = !holdUsers && unidentified > 0 && tally.outOfScope > 0;
  if (holdMissing) {
    reasons.push(`${unidentified} IdP record(s) without a readable id may be users missing from the read, so their deprovisions wait`);
  }
  const holdGroups = exceeds(otherDeletions.length, ctx.current.groups, recent.groupDeletions, 'deletes', 'groups') || vanished;
  const holdMembers = exceeds(tally.removals, ctx.current.memberships, recent.membershipRemovals, 'removes', 'group memberships') || vanished;
  // A group deletion takes its memberships with it: held when either kind is.
  const heldGroups = new Set(pendingDeletions.map((g) => g.externalId));
  for (const g of otherDeletions) if (holdGroups || (holdMembers && g.members > 0)) heldGroups.add(g.externalId);
  return { holdUsers, holdMissing, holdMembers, heldGroups, reasons };
}

/**
 * Splits a plan, or any part of one cut by users (a chunk: a user's deprovision and the
 * removals going with its account together), by the whole plan's verdict: what applies now
 * (every create and update; the destructive operations that are approved or not held) and what
 * waits. `approvedSeen`: the approved operations the part holds (the rest are stale).
 */
export function split(plan: Plan, verdict: GateVerdict, ctx: Pick<SafetyContext, 'approved' | 'pending'>): { apply: Plan; held: Plan; approvedSeen: DestructiveOp[] } {
  const approvedSeen: DestructiveOp[] = [];
  const classify = <T>(items: readonly T[], op: (item: T) => DestructiveOp) => {
    const approved: T[] = [];
    const pending: T[] = [];
    const other: T[] = [];
    for (const item of items) {
      const o = op(item);
      if (ctx.approved.has(o)) {
        approved.push(item);
        approvedSeen.push(o);
      } else if (ctx.pending.has(o)) pending.push(item);
      else other.push(item);
    }
    return { approved, pending, other };
  };
  const deprovisions = classify(plan.usersDeprovisioned, destructive.deprovision);
  const deletions = classify(plan.groupsDeleted, destructive.groupDelete);
  const removals = classify(plan.membershipsRemoved, destructive.membershipRemove);

  const heldDeprovision = (d: UserDeprovision) => verdict.holdUsers || (verdict.holdMissing && d.reason === 'out-of-scope');
  const appliedDeletions: GroupDelete[] = [...deletions.approved];
  const heldDeletions: GroupDelete[] = [...deletions.pending];
  for (const g of deletions.other) (verdict.heldGroups.has(g.externalId) ? heldDeletions : appliedDeletions).push(g);
  const appliedDeprovisions: UserDeprovision[] = [...deprovisions.approved, ...deprovisions.other.filter((d) => !heldDeprovision(d))];
  const heldDeprovisions: UserDeprovision[] = [...deprovisions.pending, ...deprovisions.other.filter(heldDeprovision)];
  const heldAccounts = new Set(heldDeprovisions.map((d) => d.externalId));
  const appliedRemovals: Membership[] = [];
  const heldRemovals: Membership[] = [...removals.pending];
  const followsHeld = (m: Membership) =>
    (m.with === 'group' && verdict.heldGroups.has(m.groupExternalId)) || (m.with === 'account' && heldAccounts.has(m.userExternalId));
  for (const m of removals.approved) (followsHeld(m) ? heldRemovals : appliedRemovals).push(m);
  for (const m of removals.other) {
    const held = m.with === undefined ? verdict.holdMembers : followsHeld(m);
    (held ? heldRemovals : appliedRemovals).push(m);
  }

  const held: Plan = {
    usersCreated: [],
    usersUpdated: [],
    usersReprovisioned: [],
    // Their updates apply now (below): the held record and the approved run have none left to make.
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
  return { apply, held, approvedSeen };
}

/** Approved operations the fresh plan no longer contains (`seen`: those it does). */
export function staleApprovals(ctx: Pick<SafetyContext, 'approved'>, seen: DestructiveSet): DestructiveOp[] {
  return [...ctx.approved].filter((op) => !seen.has(op));
}

function describeWindow(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes === 60 ? 'hour' : `${minutes} minutes`;
}

/** Destructive operations a held plan holds. */
export function heldCount(held: Plan): number {
  return held.usersDeprovisioned.length + held.groupsDeleted.length + held.membershipsRemoved.length;
}
