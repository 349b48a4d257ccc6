import type {
  DirectoryGroup,
  DirectoryUser,
  LocalGroup,
  LocalState,
  LocalUser,
  SkippedRecord,
  Snapshot,
  UserField,
} from './model.js';
import { USER_FIELDS, userNameClash, userNameKey } from './model.js';
import type { Policy } from './policy.js';

export type DeprovisionReason = 'out-of-scope' | 'idp-status';

/** A user to grant access to: a new account, or (adopts) an account nobody enabled owns yet. */
export interface UserGrant extends DirectoryUser {
  /** The account this identity adopts (SPEC "Adoption"), or null for a new account. */
  readonly adopts: string | null;
  /**
   * A reprovision only: the attribute changes the record brings to the inactive account (an
   * email changed with the reactivation). Applied by the grant, and recorded as a
   * `user.updated` of its own in the same transaction (SPEC "Events": every applied change).
   */
  readonly update?: UserUpdate;
}

export interface UserUpdate {
  readonly user: DirectoryUser;
  /** Named fields that changed; `attributes` when only raw profile attributes did. */
  readonly changed: readonly (UserField | 'attributes')[];
  /** The account before the update: the previous values events carry. */
  readonly previous: LocalUser;
}

export interface UserDeprovision {
  readonly externalId: string;
  readonly userName: string;
  readonly reason: DeprovisionReason;
  /** The IdP's current record when it still lists the user (suspended, deactivated), to refresh attributes. */
  readonly user: DirectoryUser | null;
  /**
   * The attribute changes that record brings, if any: applied with the deprovision (suspend
   * mode refreshes the account; the other modes remove it) and recorded as a `user.updated` of
   * its own in the same transaction, or applied on their own at once when the deprovision is
   * held (updates are never held, SPEC "Safety"). Either way the host app hears the same
   * `user.updated`, with each field's previous and new value.
   */
  readonly update?: UserUpdate;
}

export interface GroupUpdate {
  readonly group: DirectoryGroup;
  readonly changed: readonly ('name' | 'description' | 'attributes')[];
  /** The group before the update: the previous values events carry. */
  readonly previous: LocalGroup;
}

export interface GroupDelete {
  readonly externalId: string;
  readonly name: string;
  /** Members the group takes with it; each is also a removal in `membershipsRemoved`. */
  readonly members: number;
}

export interface Membership {
  readonly groupExternalId: string;
  readonly userExternalId: string;
  /** Names for the change log; ids are what apply matches on. */
  readonly groupName: string;
  readonly userName: string;
  /**
   * A removal that goes with its group's deletion, or with its account's deprovision (the
   * account removed in remove-access or delete mode, or the user out of scope): held exactly
   * when that operation is.
   */
  readonly with?: 'group' | 'account';
}

/**
 * The typed operations that take a tenant's local state to the IdP's projection.
 * One list per kind, so apply can run each kind as set-based batches and counts are lengths.
 */
export interface Plan {
  readonly usersCreated: readonly UserGrant[];
  readonly usersUpdated: readonly UserUpdate[];
  readonly usersReprovisioned: readonly UserGrant[];
  readonly usersDeprovisioned: readonly UserDeprovision[];
  readonly groupsCreated: readonly DirectoryGroup[];
  readonly groupsUpdated: readonly GroupUpdate[];
  readonly groupsDeleted: readonly GroupDelete[];
  readonly membershipsAdded: readonly Membership[];
  readonly membershipsRemoved: readonly Membership[];
  /** Records left as they are, and why: the run's warnings (SPEC "Per-record isolation"). */
  readonly skipped: readonly SkippedRecord[];
}

/** One of the plan's operation kinds (every list but `skipped`). */
export type PlanKind = (typeof PLAN_KINDS)[number];

export type PlanCounts = { readonly [K in PlanKind]: number };

export const PLAN_KINDS = [
  'usersCreated',
  'usersUpdated',
  'usersDeprovisioned',
  'usersReprovisioned',
  'groupsCreated',
  'groupsUpdated',
  'groupsDeleted',
  'membershipsAdded',
  'membershipsRemoved',
] as const satisfies readonly (keyof Plan)[];

/** The change-log kind each operation is recorded under. */
export const CHANGE_KINDS = {
  usersCreated: 'user.created',
  usersUpdated: 'user.updated',
  usersDeprovisioned: 'user.deprovisioned',
  usersReprovisioned: 'user.reprovisioned',
  groupsCreated: 'group.created',
  groupsUpdated: 'group.updated',
  groupsDeleted: 'group.deleted',
  membershipsAdded: 'membership.added',
  membershipsRemoved: 'membership.removed',
} as const satisfies { readonly [K in PlanKind]: string };

export function addCounts(a: PlanCounts, b: PlanCounts): PlanCounts {
  const sum = {} as Record<PlanKind, number>;
  for (const kind of PLAN_KINDS) sum[kind] = a[kind] + b[kind];
  return sum;
}

/**
 * How many changes applying the plan under `policy` makes, per kind: its operations, and the
 * updates recorded with its reprovisions and deprovisions (updateWithStatus) as `usersUpdated`,
 * as applying counts them.
 */
export function planCounts(plan: Plan, policy: Policy): PlanCounts {
  const counts = {} as Record<PlanKind, number>;
  for (const kind of PLAN_KINDS) counts[kind] = plan[kind].length;
  counts.usersUpdated += [...plan.usersReprovisioned, ...plan.usersDeprovisioned].filter((op) => updateWithStatus(op, policy)).length;
  return counts;
}

/**
 * The attribute update that applies, and is recorded as a `user.updated` of its own, with this
 * reprovision or deprovision: a reprovision's always (its grant writes the record); a
 * deprovision's in suspend mode when the IdP still lists the user (the account is kept and
 * refreshed; the other modes remove it, and a deprovision without the record refreshes nothing).
 */
export function updateWithStatus(op: UserGrant | UserDeprovision, policy: Policy): UserUpdate | undefined {
  if ('adopts' in op) return op.update;
  return op.user && policy.deprovisionMode === 'suspend' ? op.update : undefined;
}

/** How many operations, all kinds together. */
export function totalChanges(counts: Partial<PlanCounts>): number {
  return PLAN_KINDS.reduce((n, kind) => n + (counts[kind] ?? 0), 0);
}

export function zeroCounts(): PlanCounts {
  return Object.fromEntries(PLAN_KINDS.map((kind) => [kind, 0])) as Record<PlanKind, number>;
}

export function emptyPlan(): Plan {
  return {
    usersCreated: [],
    usersUpdated: [],
    usersReprovisioned: [],
    usersDeprovisioned: [],
    groupsCreated: [],
    groupsUpdated: [],
    groupsDeleted: [],
    membershipsAdded: [],
    membershipsRemoved: [],
    skipped: [],
  };
}

/**
 * What deleting an integration removes from its tenant, as a plan: every group it provisioned,
 * each membership going with its group. By default its accounts stay (unowned, for the next
 * integration that provisions them to adopt), so no user operation is planned; with
 * `accounts: 'delete'` (the demo's reset) every account goes too, each a deprovision (recorded
 * in `delete` mode: a `user.deleted` event). Recorded as applied, these are the deletion's
 * events (IntegrationService.delete).
 */
export function integrationRemovalPlan(local: Pick<LocalState, 'users' | 'groups' | 'memberships'>, options: { accounts: 'keep' | 'delete' } = { accounts: 'keep' }): Plan {
  const plan = emptyPlan();
  const groupsDeleted: GroupDelete[] = [];
  const membershipsRemoved: Membership[] = [];
  for (const group of sorted(local.groups)) {
    const members = [...(local.memberships.get(group.externalId) ?? EMPTY)].sort();
    for (const userExternalId of members) {
      const userName = local.users.get(userExternalId)?.userName ?? userExternalId;
      membershipsRemoved.push({ groupExternalId: group.externalId, userExternalId, groupName: group.name, userName, with: 'group' });
    }
    groupsDeleted.push({ externalId: group.externalId, name: group.name, members: members.length });
  }
  const usersDeprovisioned: UserDeprovision[] =
    options.accounts === 'delete' ? sorted(local.users).map((u) => ({ externalId: u.externalId, userName: u.userName, reason: 'out-of-scope', user: null })) : [];
  return { ...plan, groupsDeleted, membershipsRemoved, usersDeprovisioned };
}

export function isEmptyPlan(plan: Plan): boolean {
  return PLAN_KINDS.every((kind) => plan[kind].length === 0);
}

/**
 * Diffs the tenant's local state against a complete snapshot of the IdP scope.
 * Pure: the same inputs always give the same plan, in a deterministic order.
 *
 * Identity is the IdP id alone (SPEC "Identity: accounts and people"): a login that changed
 * is an update of the same account; a login a new IdP id took is a new account that inherits
 * nothing. A new identity whose login matches an account nobody enabled owns adopts it; one
 * whose login another enabled integration's account holds is skipped as a conflict. Skipped
 * records are never deprovisioned for being unreadable, but a readable status that
 * deprovisions still applies. Memberships mirror the IdP in every mode.
 *
 * @example
 *   const p = plan(await repo.loadLocalState(id), await connector.readSnapshot(), { deprovisionMode: 'suspend' });
 *   p.usersCreated.length // users to grant access to
 */
export function plan(local: LocalState, snapshot: Snapshot, policy: Policy): Plan {
  const usersCreated: UserGrant[] = [];
  const usersUpdated: UserUpdate[] = [];
  const usersReprovisioned: UserGrant[] = [];
  const usersDeprovisioned: UserDeprovision[] = [];
  const skipped: SkippedRecord[] = [...snapshot.skipped];
  const skippedUsers = new Map<string, SkippedRecord>();
  const skippedGroups = new Set<string>();
  for (const record of snapshot.skipped) {
    if (record.externalId === null) continue;
    if (record.kind === 'user') skippedUsers.set(record.externalId, record);
    else skippedGroups.add(record.externalId);
  }

  // Accounts of this integration once the plan is applied; only they can be group members.
  const rowsAfter = new Set<string>();
  /** Accounts of records that were not taken (skipped, clashing, in conflict): kept as they are. */
  const untaken = new Set<string>();
  const keepsRow = policy.deprovisionMode === 'suspend';
  // Accounts whose memberships go because they are deprovisioned: the account goes
  // (remove-access, delete), or the user left the scope. Those removals follow the deprovision.
  const removedAccounts = new Set<string>();
  const deprovision = (externalId: string, userName: string, reason: DeprovisionReason, user: DirectoryUser | null, update?: UserUpdate) => {
    usersDeprovisioned.push({ externalId, userName, reason, user, ...(update && { update }) });
    if (keepsRow) rowsAfter.add(externalId);
    if (!keepsRow || reason === 'out-of-scope') removedAccounts.add(externalId);
  };
  /** The enabled integration that owns another account with this login, if any. */
  const claimedElsewhere = (user: DirectoryUser) => local.others.get(userNameKey(user.userName))?.ownedByEnabled ?? null;
  const conflict = (user: DirectoryUser, owner: string): SkippedRecord => ({
    kind: 'user',
    externalId: user.externalId,
    subject: user.userName,
    reason: `userName "${user.userName}" belongs to an account of integration ${owner}, another enabled integration of this tenant: disable one of the two, or take the user out of one IdP`,
    active: user.active,
  });

  // Two IdP users whose logins normalize alike cannot both be that login: neither is taken
  // (SnapshotBuilder already skips them; a snapshot from elsewhere is held to the same rule).
  const keyCounts = new Map<string, number>();
  for (const user of snapshot.users.values()) {
    const key = userNameKey(user.userName);
    keyCounts.set(key, (keyCounts.get(key) ?? 0) + 1);
  }
  const clashing = new Map<string, string[]>();
  for (const user of snapshot.users.values()) {
    const key = userNameKey(user.userName);
    if ((keyCounts.get(key) ?? 0) > 1) clashing.set(key, [...(clashing.get(key) ?? []), user.externalId]);
  }
  const clash = (user: DirectoryUser): SkippedRecord | undefined => {
    if (clashing.size === 0) return undefined;
    const ids = clashing.get(userNameKey(user.userName));
    if (!ids) return undefined;
    return {
      kind: 'user',
      externalId: user.externalId,
      subject: user.userName,
      reason: userNameClash(ids, user.userName),
      active: user.active,
    };
  };

  for (const externalId of [...new Set([...snapshot.users.keys(), ...skippedUsers.keys()])].sort()) {
    const existing = local.users.get(externalId);
    let user = snapshot.users.get(externalId) ?? null;
    let readable: SkippedRecord | undefined = skippedUsers.get(externalId);
    const clashing = user ? clash(user) : undefined;
    if (clashing) {
      readable = clashing;
      skipped.push(clashing);
      user = null;
    }
    if (user) {
      const sameLogin = existing !== undefined && (existing.userName === user.userName || userNameKey(existing.userName) === userNameKey(user.userName));
      const owner = sameLogin || local.others.size === 0 ? null : claimedElsewhere(user);
      if (owner !== null) {
        readable = conflict(user, owner);
        skipped.push(readable);
        user = null;
      }
    }
    if (!user) {
      // Skipped: kept as it is, unless its readable status deprovisions.
      if (!existing) continue;
      if (existing.active && readable?.active === false) deprovision(externalId, existing.userName, 'idp-status', null);
      else {
        rowsAfter.add(externalId);
        untaken.add(externalId);
      }
      continue;
    }
    if (!existing) {
      // An inactive user the tenant does not have gets nothing: there is no access to take away.
      if (!user.active) continue;
      const grant: UserGrant = { ...user, adopts: local.others.size === 0 ? null : (local.others.get(userNameKey(user.userName))?.accountId ?? null) };
      (local.lockedOut.has(externalId) ? usersReprovisioned : usersCreated).push(grant);
      rowsAfter.add(externalId);
      continue;
    }
    const changed = userChanges(existing, user);
    const update: UserUpdate | undefined = changed.length > 0 ? { user, changed, previous: existing } : undefined;
    if (existing.active && !user.active) {
      deprovision(externalId, user.userName, 'idp-status', user, update);
      continue;
    }
    rowsAfter.add(externalId);
    if (!existing.active && user.active) {
      usersReprovisioned.push({ ...user, adopts: null, ...(update && { update }) });
      continue;
    }
    if (update) usersUpdated.push(update);
  }

  for (const existing of sorted(local.users)) {
    if (snapshot.users.has(existing.externalId) || skippedUsers.has(existing.externalId)) continue;
    if (existing.active) deprovision(existing.externalId, existing.userName, 'out-of-scope', null);
    // Deprovisioned by an earlier run (whatever the mode was then): the account stays.
    else rowsAfter.add(existing.externalId);
  }

  const groupsCreated: DirectoryGroup[] = [];
  const groupsUpdated: GroupUpdate[] = [];
  const groupsDeleted: GroupDelete[] = [];
  const membershipsAdded: Membership[] = [];
  const membershipsRemoved: Membership[] = [];
  const userName = (id: string) => snapshot.users.get(id)?.userName ?? local.users.get(id)?.userName ?? id;
  for (const group of sorted(snapshot.groups)) {
    const existing = local.groups.get(group.externalId);
    if (!existing) groupsCreated.push(group);
    else {
      const changed = groupChanges(existing, group);
      if (changed.length > 0) groupsUpdated.push({ group, changed, previous: existing });
    }
    const member = (userExternalId: string): Membership => ({
      groupExternalId: group.externalId,
      userExternalId,
      groupName: group.name,
      userName: userName(userExternalId),
    });
    const have = local.memberships.get(group.externalId) ?? EMPTY;
    const want = [...(snapshot.memberships.get(group.externalId) ?? EMPTY)].filter((id) => rowsAfter.has(id));
    const wanted = new Set(want);
    for (const userExternalId of want.sort()) {
      // A record not taken gains nothing: its account stays as it was (what it has, the IdP's removals aside).
      if (!have.has(userExternalId) && !untaken.has(userExternalId)) membershipsAdded.push(member(userExternalId));
    }
    for (const userExternalId of [...have].sort()) {
      if (wanted.has(userExternalId)) continue;
      const removal = member(userExternalId);
      membershipsRemoved.push(removedAccounts.has(userExternalId) ? { ...removal, with: 'account' } : removal);
    }
  }
  for (const existing of sorted(local.groups)) {
    if (snapshot.groups.has(existing.externalId)) continue;
    if (skippedGroups.has(existing.externalId)) {
      // A group skipped as unreadable is evidence that it exists: kept, with its members as
      // they are, but for accounts that go (their memberships go with them, listed).
      for (const userExternalId of [...(local.memberships.get(existing.externalId) ?? EMPTY)].sort()) {
        if (!removedAccounts.has(userExternalId)) continue;
        membershipsRemoved.push({ groupExternalId: existing.externalId, userExternalId, groupName: existing.name, userName: userName(userExternalId), with: 'account' });
      }
      continue;
    }
    const members = [...(local.memberships.get(existing.externalId) ?? EMPTY)].sort();
    groupsDeleted.push({ externalId: existing.externalId, name: existing.name, members: members.length });
    for (const userExternalId of members) {
      membershipsRemoved.push({ groupExternalId: existing.externalId, userExternalId, groupName: existing.name, userName: userName(userExternalId), with: 'group' });
    }
  }

  return {
    usersCreated,
    usersUpdated,
    usersReprovisioned,
    usersDeprovisioned,
    groupsCreated,
    groupsUpdated,
    groupsDeleted,
    membershipsAdded,
    membershipsRemoved,
    skipped,
  };
}

const EMPTY: ReadonlySet<string> = new Set();

function sorted<T>(map: ReadonlyMap<string, T>): T[] {
  return [...map.keys()].sort().map((key) => map.get(key) as T);
}

/**
 * The named fields that changed, and `attributes` whenever the IdP's raw record did (the
 * fingerprint covers it whole, the fields' sources included): a host app keeping raw
 * attributes knows to read them again, with or without a field change.
 */
function userChanges(local: LocalUser, user: DirectoryUser): (UserField | 'attributes')[] {
  const changed: (UserField | 'attributes')[] = USER_FIELDS.filter((field) => local[field] !== user[field]);
  if (local.fingerprint !== user.fingerprint) changed.push('attributes');
  return changed;
}

function groupChanges(local: LocalGroup, group: DirectoryGroup): ('name' | 'description' | 'attributes')[] {
  const changed: ('name' | 'description' | 'attributes')[] = [];
  if (local.name !== group.name) changed.push('name');
  if (local.description !== group.description) changed.push('description');
  if (local.fingerprint !== group.fingerprint) changed.push('attributes');
  return changed;
}
