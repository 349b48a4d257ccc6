import type { DirectoryUser, LocalState, SkippedRecord, Snapshot } from '../core/model.js';
import { PLAN_KINDS, type Plan, emptyPlan, plan } from '../core/plan.js';
import type { Policy } from '../core/policy.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import { type IdRange, StagingRepository } from '../db/staging.repository.js';
import type { StagedRead } from './staged-read.js';

/**
 * Users a staged plan takes at a time: its memory is about this many users' records and
 * memberships, twice (two chunks apply at once). 2,500 rather than 5,000 cut the W1M initial
 * sync's peak RSS from about 520 to about 465 MB at no cost in time on the bench.
 */
export const STAGED_CHUNK = 2_500;

/** One chunk of a staged plan: the operations on the users in `range`, and (first chunk only) on the groups. */
export interface PlanChunk {
  readonly range: IdRange;
  readonly plan: Plan;
}

/**
 * Plans a staged read (src/runs/staged-read.ts) against the integration's state, one range of
 * users at a time, with the pure `plan()`: each chunk gets the staged users in its range and
 * their memberships in every group, and the tenant's accounts, memberships and locks in the same
 * range, with the other accounts holding its users' logins. Together the chunks hold the
 * operations `plan()` makes of the whole read, as sets (the identical-plans test pins it; the
 * order differs: chunk by chunk, in the database's order of ids, then as plan() orders them),
 * because every rule for a user and its memberships looks at that user's own facts alone; what
 * spans users is done before: clashes (StagedSnapshot.finish), and a deleted group's member
 * count (counted here).
 *
 * `checkpoint` is called before each chunk is read (a run's interruption check: it throws).
 *
 * - The group operations (created, updated, deleted) come with the first chunk, each once; a
 *   deleted group's `members` counts all its members, while its removals come with each chunk.
 * - Skipped records that are not users with an id (groups, records without a readable id) come
 *   with the first chunk; skipped users with their range.
 * - Groups whose members were not read (`unreadMembers`) take their members from the tenant, as
 *   completeSnapshot does, plus those staged for them (users entering the scope).
 *
 * @param size users per chunk, about
 */
export async function* planStaged(
  db: Db,
  read: StagedRead,
  scope: { readonly integrationId: string; readonly tenantId: string },
  policy: Policy,
  size = STAGED_CHUNK,
  checkpoint?: () => void,
): AsyncGenerator<PlanChunk> {
  const directory = new DirectoryRepository(db);
  const staging = new StagingRepository(db);
  const localGroups = await directory.groupsOf(scope.integrationId);
  const skippedUsers = read.skipped.filter((r): r is SkippedRecord & { externalId: string } => r.kind === 'user' && r.externalId !== null);
  const global = read.skipped.filter((r) => r.kind !== 'user' || r.externalId === null);
  const skippedGroupIds = new Set(global.flatMap((r) => (r.kind === 'group' && r.externalId !== null ? [r.externalId] : [])));
  const ranges = await staging.ranges(read.readId, scope.integrationId, skippedUsers.map((r) => r.externalId), size);
  const skippedIn = await staging.chunkOf(skippedUsers.map((r) => r.externalId), ranges);
  const skippedById = new Map(skippedUsers.map((r) => [r.externalId, r]));
  const deletedMembers = await directory.memberCounts(scope.integrationId, [...localGroups.keys()].filter((g) => !read.groups.has(g) && !skippedGroupIds.has(g)));
  const globalSkipped = new Set(global);

  for (const [index, range] of ranges.entries()) {
    checkpoint?.();
    const users = new Map<string, DirectoryUser>();
    for (const user of await staging.usersIn(read.readId, range)) users.set(user.externalId, user);
    const skippedHere = (skippedIn.get(index) ?? []).map((id) => skippedById.get(id)!);
    const skippedIds = new Set(skippedHere.map((r) => r.externalId));
    const inScope = (id: string) => users.has(id) || skippedIds.has(id);
    const local = await directory.loadLocalChunk(scope.integrationId, scope.tenantId, range, [...users.values()]);
    const memberships = new Map<string, Set<string>>();
    for (const groupId of [...read.groups.keys(), ...skippedGroupIds]) memberships.set(groupId, new Set());
    for (const { group, user } of await staging.membersIn(read.readId, range)) {
      // Members outside the scope are not the tenant's users (as SnapshotBuilder drops them).
      if (inScope(user)) memberships.get(group)?.add(users.get(user)?.externalId ?? user);
    }
    for (const groupId of read.unreadMembers ?? []) {
      const members = memberships.get(groupId)!;
      for (const id of local.memberships.get(groupId) ?? []) if (inScope(id)) members.add(id);
    }
    const snapshot: Snapshot = { users, groups: read.groups, memberships, skipped: [...skippedHere, ...global], suspicious: read.suspicious };
    const state: LocalState = { ...local, groups: localGroups };
    const planned = plan(state, snapshot, policy);
    if (index === 0) {
      yield { range, plan: { ...planned, groupsDeleted: planned.groupsDeleted.map((g) => ({ ...g, members: deletedMembers.get(g.externalId) ?? 0 })) } };
    } else {
      yield { range, plan: { ...planned, groupsCreated: [], groupsUpdated: [], groupsDeleted: [], skipped: planned.skipped.filter((r) => !globalSkipped.has(r)) } };
    }
  }
}

/** The chunks' plans as one, in chunk order: the operations `plan()` makes of the whole read (as sets). */
export function joinPlans(chunks: readonly Plan[]): Plan {
  const joined = { ...emptyPlan() } as Record<keyof Plan, unknown[]>;
  for (const kind of [...PLAN_KINDS, 'skipped' as const]) joined[kind] = chunks.flatMap((p) => p[kind] as readonly unknown[]);
  return joined as unknown as Plan;
}
