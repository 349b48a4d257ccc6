import type {
  DirectoryGroup,
  DirectoryUser,
  LocalGroup,
  LocalState,
  LocalUser,
  Snapshot,
  UserField,
} from './model.js';
import { USER_FIELDS } from './model.js';
import type { Policy } from './policy.js';

export type DeprovisionReason = 'out-of-scope' | 'idp-status';

export interface UserUpdate {
  readonly user: DirectoryUser;
  /** Named fields that changed; `attributes` when only raw profile attributes did. */
  readonly changed: readonly (UserField | 'attributes')[];
}

export interface UserDeprovision {
  readonly externalId: string;
  readonly userName: string;
  readonly reason: DeprovisionReason;
  /** The IdP's current record when it still lists the user (suspended, deactivated), to refresh attributes. */
  readonly user: DirectoryUser | null;
}

export interface GroupUpdate {
  readonly group: DirectoryGroup;
  readonly changed: readonly ('name' | 'description' | 'attributes')[];
}

export interface GroupDelete {
  readonly externalId: string;
  readonly name: string;
}

export interface Membership {
  readonly groupExternalId: string;
  readonly userExternalId: string;
  /** Names for the change log; ids are what apply matches on. */
  readonly groupName: string;
  readonly userName: string;
}

/**
 * The typed operations that take a tenant's local state to the IdP's projection.
 * One list per kind, so apply can run each kind as set-based batches and counts are lengths.
 */
export interface Plan {
  readonly usersCreated: readonly DirectoryUser[];
  readonly usersUpdated: readonly UserUpdate[];
  readonly usersReprovisioned: readonly DirectoryUser[];
  readonly usersDeprovisioned: readonly UserDeprovision[];
  readonly groupsCreated: readonly DirectoryGroup[];
  readonly groupsUpdated: readonly GroupUpdate[];
  readonly groupsDeleted: readonly GroupDelete[];
  readonly membershipsAdded: readonly Membership[];
  readonly membershipsRemoved: readonly Membership[];
}

export type PlanCounts = { readonly [K in keyof Plan]: number };

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
} as const satisfies { readonly [K in keyof Plan]: string };

export function addCounts(a: PlanCounts, b: PlanCounts): PlanCounts {
  const sum = {} as Record<keyof Plan, number>;
  for (const kind of PLAN_KINDS) sum[kind] = a[kind] + b[kind];
  return sum;
}

export function planCounts(plan: Plan): PlanCounts {
  const counts = {} as Record<keyof Plan, number>;
  for (const kind of PLAN_KINDS) counts[kind] = plan[kind].length;
  return counts;
}

/** How many operations, all kinds together. */
export function totalChanges(counts: Partial<PlanCounts>): number {
  return PLAN_KINDS.reduce((n, kind) => n + (counts[kind] ?? 0), 0);
}

export function zeroCounts(): PlanCounts {
  return planCounts(emptyPlan());
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
  };
}

export function isEmptyPlan(plan: Plan): boolean {
  return PLAN_KINDS.every((kind) => plan[kind].length === 0);
}

/**
 * Diffs the tenant's local state against a complete snapshot of the IdP scope.
 * Pure: the same inputs always give the same plan, in a deterministic order.
 *
 * @example
 *   const p = plan(await repo.loadLocalState(id), await connector.snapshot(), { deprovisionMode: 'suspend' });
 *   p.usersCreated.length // users to grant access to
 */
export function plan(local: LocalState, snapshot: Snapshot, policy: Policy): Plan {
  const usersCreated: DirectoryUser[] = [];
  const usersUpdated: UserUpdate[] = [];
  const usersReprovisioned: DirectoryUser[] = [];
  const usersDeprovisioned: UserDeprovision[] = [];

  // Users who hold a local row once the plan is applied; only they can be group members.
  const rowsAfter = new Set<string>();
  // Deprovisioned users that keep their row and memberships (suspend mode, left the scope).
  const frozenMembers = new Set<string>();

  const keepsRow = policy.deprovisionMode === 'suspend';
  for (const user of sorted(snapshot.users)) {
    const existing = local.users.get(user.externalId);
    if (!existing) {
      // An inactive user the tenant does not have gets nothing: there is no access to take away.
      if (user.active) {
        (local.lockedOut.has(user.externalId) ? usersReprovisioned : usersCreated).push(user);
        rowsAfter.add(user.externalId);
      }
      continue;
    }
    if (existing.active && !user.active) {
      usersDeprovisioned.push({ externalId: user.externalId, userName: user.userName, reason: 'idp-status', user });
      if (keepsRow) rowsAfter.add(user.externalId);
      continue;
    }
    rowsAfter.add(user.externalId);
    if (!existing.active && user.active) {
      usersReprovisioned.push(user);
      continue;
    }
    const changed = userChanges(existing, user);
    if (changed.length > 0) usersUpdated.push({ user, changed });
  }

  for (const existing of sorted(local.users)) {
    if (snapshot.users.has(existing.externalId)) continue;
    if (existing.active) {
      usersDeprovisioned.push({
        externalId: existing.externalId,
        userName: existing.userName,
        reason: 'out-of-scope',
        user: null,
      });
      if (!keepsRow) continue;
    }
    // Suspended now, or deprovisioned by an earlier run (whatever the mode was then): the
    // row and its memberships stay as they are; a later change of mode is not retroactive.
    rowsAfter.add(existing.externalId);
    frozenMembers.add(existing.externalId);
  }

  const groupsCreated: DirectoryGroup[] = [];
  const groupsUpdated: GroupUpdate[] = [];
  const groupsDeleted: GroupDelete[] = [];
  for (const group of sorted(snapshot.groups)) {
    const existing = local.groups.get(group.externalId);
    if (!existing) {
      groupsCreated.push(group);
      continue;
    }
    const changed = groupChanges(existing, group);
    if (changed.length > 0) groupsUpdated.push({ group, changed });
  }
  for (const existing of sorted(local.groups)) {
    if (!snapshot.groups.has(existing.externalId)) {
      groupsDeleted.push({ externalId: existing.externalId, name: existing.name });
    }
  }

  const membershipsAdded: Membership[] = [];
  const membershipsRemoved: Membership[] = [];
  const userName = (id: string) => snapshot.users.get(id)?.userName ?? local.users.get(id)?.userName ?? id;
  for (const group of sorted(snapshot.groups)) {
    const groupExternalId = group.externalId;
    const member = (userExternalId: string): Membership => ({
      groupExternalId,
      userExternalId,
      groupName: group.name,
      userName: userName(userExternalId),
    });
    const have = local.memberships.get(groupExternalId) ?? EMPTY;
    const want = new Set<string>();
    for (const userExternalId of snapshot.memberships.get(groupExternalId) ?? EMPTY) {
      if (rowsAfter.has(userExternalId)) want.add(userExternalId);
    }
    for (const userExternalId of have) {
      if (frozenMembers.has(userExternalId)) want.add(userExternalId);
    }
    for (const userExternalId of [...want].sort()) {
      if (!have.has(userExternalId)) membershipsAdded.push(member(userExternalId));
    }
    for (const userExternalId of [...have].sort()) {
      if (!want.has(userExternalId)) membershipsRemoved.push(member(userExternalId));
    }
  }
  // Memberships of deleted groups go with the group; they are not counted twice.

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
  };
}

const EMPTY: ReadonlySet<string> = new Set();

function sorted<T>(map: ReadonlyMap<string, T>): T[] {
  return [...map.keys()].sort().map((key) => map.get(key) as T);
}

function userChanges(local: LocalUser, user: DirectoryUser): (UserField | 'attributes')[] {
  const changed: (UserField | 'attributes')[] = USER_FIELDS.filter((field) => local[field] !== user[field]);
  if (changed.length === 0 && local.fingerprint !== user.fingerprint) changed.push('attributes');
  return changed;
}

function groupChanges(local: LocalGroup, group: DirectoryGroup): ('name' | 'description' | 'attributes')[] {
  const changed: ('name' | 'description' | 'attributes')[] = [];
  if (local.name !== group.name) changed.push('name');
  if (local.description !== group.description) changed.push('description');
  if (changed.length === 0 && local.fingerprint !== group.fingerprint) changed.push('attributes');
  return changed;
}
