import { sql } from 'kysely';
import type { DirectoryUser, LocalState, SkippedRecord, Snapshot } from '../core/model.js';
import { type Plan, plan } from '../core/plan.js';
import type { Policy } from '../core/policy.js';
import type { Db } from '../db/database.js';
import { DirectoryRepository } from '../db/directory.repository.js';
import { type IdRange, StagingRepository } from '../db/staging.repository.js';
import type { StagedRead } from './staged-read.js';

/** Users a staged plan takes at a time: its memory is about this many users' records and memberships. */
export const STAGED_CHUNK = 5_000;

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
  const skippedIn = await chunksOf(db, skippedUsers, ranges);
  const deletedMembers = await membersOfDeleted(db, scope.integrationId, [...localGroups.keys()].filter((g) => !read.groups.has(g) && !skippedGroupIds.has(g)));

  for (const [index, range] of ranges.entries()) {
    checkpoint?.();
    const users = new Map<string, DirectoryUser>();
    for (const user of await staging.usersIn(read.readId, range)) users.set(user.externalId, user);
    const skippedHere = skippedIn.get(index) ?? [];
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
      const globalSkipped = new Set(global);
      yield { range, plan: { ...planned, groupsCreated: [], groupsUpdated: [], groupsDeleted: [], skipped: planned.skipped.filter((r) => !globalSkipped.has(r)) } };
    }
  }
}

/** The chunks' plans as one, in chunk order: the operations `plan()` makes of the whole read (as sets). */
export function joinPlans(chunks: readonly Plan[]): Plan {
  const join = <K extends keyof Plan>(kind: K) => chunks.flatMap((p) => p[kind] as Plan[K][number][]) as unknown as Plan[K];
  return {
    usersCreated: join('usersCreated'),
    usersUpdated: join('usersUpdated'),
    usersReprovisioned: join('usersReprovisioned'),
    usersDeprovisioned: join('usersDeprovisioned'),
    groupsCreated: join('groupsCreated'),
    groupsUpdated: join('groupsUpdated'),
    groupsDeleted: join('groupsDeleted'),
    membershipsAdded: join('membershipsAdded'),
    membershipsRemoved: join('membershipsRemoved'),
    skipped: join('skipped'),
  };
}

/** Which range (by index) each skipped user falls in, by the database's order of text (the ranges' own). */
async function chunksOf<T extends { externalId: string }>(db: Db, records: readonly T[], ranges: readonly IdRange[]): Promise<Map<number, T[]>> {
  const byChunk = new Map<number, T[]>();
  if (records.length === 0) return byChunk;
  const bounds = ranges.flatMap((r) => (r.upTo === null ? [] : [r.upTo]));
  // Range i holds the ids above i bounds: (bound i-1, bound i].
  const { rows } = await sql<{ id: string; chunk: number }>`
    select s.id, (select count(*) from unnest(${bounds}::text[]) b where b < s.id)::int as chunk
    from unnest(${records.map((r) => r.externalId)}::text[]) as s(id)
  `.execute(db);
  const byId = new Map(records.map((r) => [r.externalId, r]));
  for (const { id, chunk } of rows) {
    const list = byChunk.get(chunk);
    if (list) list.push(byId.get(id)!);
    else byChunk.set(chunk, [byId.get(id)!]);
  }
  return byChunk;
}

/** How many members each of these groups has (accounts of the integration): what a group's deletion takes with it. */
async function membersOfDeleted(db: Db, integrationId: string, groupIds: readonly string[]): Promise<Map<string, number>> {
  if (groupIds.length === 0) return new Map();
  const { rows } = await sql<{ group: string; n: number }>`
    select g.external_id as "group", count(*)::int as n
    from group_memberships gm
    join groups g on g.id = gm.group_id
    join accounts a on a.id = gm.account_id
    where g.integration_id = ${integrationId}::uuid and a.integration_id = ${integrationId}::uuid and g.external_id = any(${groupIds}::text[])
    group by g.external_id
  `.execute(db);
  return new Map(rows.map((r) => [r.group, r.n]));
}
