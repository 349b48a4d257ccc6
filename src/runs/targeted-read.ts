import type { SubjectNames, SubjectRead, TargetedSource } from '../connectors/connector.js';
import { type DirectoryGroup, type DirectoryUser, type LocalState, type Snapshot, accountAsRead, emptyLocalState, groupAsRead } from '../core/model.js';
import type { Db } from '../db/database.js';
import { type DirectoryRepository, membershipMap } from '../db/directory.repository.js';
import { declareRead } from './read-stamps.js';

/**
 * The read step of a targeted (or incremental) run of a pulled integration: the named users
 * and groups from the IdP, declared as read (src/runs/read-stamps.ts), then the tenant's state
 * of the same subjects, both narrowed so that the planner, diffing them, plans for these
 * subjects exactly what it would plan for them over the whole scope, and nothing for anyone else.
 *
 * - A named user: its IdP record (absent: out of scope or gone, so deprovisioned), its account,
 *   lock and the accounts with its login (adoption, conflicts), and its memberships on both
 *   sides, in the groups the tenant knows (a group new to the tenant comes with a full run or
 *   with an event naming it).
 * - A named group: its record on both sides, and all its members on both sides.
 * - Groups a named user is or was a member of, unnamed, stand as the tenant holds them.
 * - Members of a named group that are not named ("bystanders") stand as their accounts are,
 *   so nothing is planned for them but their membership; one who joined or left the group (and
 *   may have entered or left the scope with it), or has no account yet, is read as a named
 *   user (its record and all its memberships), as a full run would read it.
 *
 * Throws IdpReadError when the IdP cannot be read, as a full read does.
 */
export async function readNarrowed(
  db: Db,
  source: TargetedSource,
  tenant: DirectoryRepository,
  integration: { id: string; tenantId: string },
  names: SubjectNames,
  runId: string,
  signal?: AbortSignal,
  /** Whether reading this many users one by one costs more than reading the whole scope: then 'too wide'. */
  tooWide: (users: number) => boolean = () => false,
): Promise<{ local: LocalState; snapshot: Snapshot; read: SubjectRead } | 'too wide'> {
  if (names.userIds.length + names.logins.length + names.groupIds.length === 0) {
    // Nothing named (a change feed with nothing new): nothing to ask the IdP, nothing to plan.
    const read: SubjectRead = { snapshot: emptySnapshot(), userIds: [], unknownLogins: [], groupsOf: new Map(), groupIds: [] };
    return { local: emptyLocalState(), snapshot: read.snapshot, read };
  }
  let read = await source.readSubjects({ ...names, inPlace: await heldActive(tenant, integration.id, names) }, signal);
  const unplaced = await leftWithoutGroup(read, names, tenant, integration.id);
  if (unplaced.length > 0) read = mergeReads(read, await source.readSubjects({ userIds: unplaced, logins: [], groupIds: [] }, signal));
  await declareRead(db, integration.id, runId, { users: read.userIds, groups: read.groupIds });
  let view = await narrow(read, tenant, integration);
  if (tooWide(read.userIds.length + view.unaccounted.length)) return 'too wide';
  if (view.unaccounted.length > 0) {
    const more = await source.readSubjects({ userIds: view.unaccounted, logins: [], groupIds: [] }, signal);
    await declareRead(db, integration.id, runId, { users: more.userIds, groups: [] });
    read = mergeReads(read, more);
    view = await narrow(read, tenant, integration);
  }
  return { local: view.local, snapshot: view.snapshot, read };
}

/** Both sides of the named subjects (see readNarrowed); `unaccounted`: members of named groups to read as named users (no account yet, or joined or left). */
export async function narrow(
  read: SubjectRead,
  tenant: DirectoryRepository,
  integration: { id: string; tenantId: string },
): Promise<{ local: LocalState; snapshot: Snapshot; unaccounted: string[] }> {
  const id = integration.id;
  const users = unique(read.userIds);
  const named = new Set(users);
  const groups = unique(read.groupIds);
  const idp = read.snapshot;
  const [localOfUsers, localOfGroups] = await Promise.all([
    tenant.membershipPairs(id, { by: 'user', externalIds: users }),
    tenant.membershipPairs(id, { by: 'group', externalIds: groups }),
  ]);
  const groupsOfUsers = unique([...users.flatMap((u) => read.groupsOf.get(u) ?? []), ...localOfUsers.map((p) => p.group)]);
  const localGroups = await tenant.groupsOf(id, unique([...groups, ...groupsOfUsers]));
  // Unnamed groups the tenant knows: they stand as held, carrying only the named users' memberships.
  const incidental = groupsOfUsers.filter((g) => !groups.includes(g) && localGroups.has(g));
  const namedInScope = groups.filter((g) => idp.groups.has(g) || idp.skipped.some((r) => r.kind === 'group' && r.externalId === g));
  const bystanders = unique([...namedInScope.flatMap((g) => [...(idp.memberships.get(g) ?? [])]), ...localOfGroups.map((p) => p.user)]).filter((u) => !named.has(u));
  const [accounts, lockedOut] = await Promise.all([tenant.accountsOf(id, [...users, ...bystanders]), tenant.lockedOutOf(id, users)]);
  const readUsers = users.flatMap((u) => {
    const user = idp.users.get(u);
    return user ? [user] : [];
  });
  const others = await tenant.othersOf(integration.tenantId, id, readUsers.map((u) => u.userName));

  const local: LocalState = {
    users: accounts,
    groups: localGroups,
    memberships: membershipMap([...localOfUsers, ...localOfGroups]),
    lockedOut,
    others,
  };

  const snapshotUsers = new Map<string, DirectoryUser>(readUsers.map((u) => [u.externalId, u]));
  // A member who joined or left a named group may have entered or left the scope with it (a
  // group assigned to the app, bound to the application): read as a named user, all of it.
  const moved = new Set<string>();
  const localByGroup = membershipMap(localOfGroups);
  for (const g of groups) {
    const before = localByGroup.get(g) ?? new Set<string>();
    const now = idp.memberships.get(g) ?? new Set<string>();
    for (const u of now) if (!before.has(u) && !named.has(u)) moved.add(u);
    for (const u of before) if (!now.has(u) && !named.has(u)) moved.add(u);
  }
  const unaccounted: string[] = [];
  for (const userId of bystanders) {
    const account = accounts.get(userId);
    if (account && !moved.has(userId)) snapshotUsers.set(userId, accountAsRead(account));
    else unaccounted.push(userId);
  }
  const snapshotGroups = new Map<string, DirectoryGroup>();
  for (const g of groups) {
    const group = idp.groups.get(g);
    if (group) snapshotGroups.set(g, group);
  }
  for (const g of incidental) snapshotGroups.set(g, groupAsRead(localGroups.get(g)!));
  const memberships = new Map<string, Set<string>>();
  const member = (g: string, u: string) => {
    let set = memberships.get(g);
    if (!set) memberships.set(g, (set = new Set()));
    set.add(u);
  };
  for (const g of namedInScope) {
    memberships.set(g, new Set());
    for (const u of idp.memberships.get(g) ?? []) if (snapshotUsers.has(u) || isSkippedUser(idp, u)) member(g, u);
  }
  for (const u of users) {
    if (!snapshotUsers.has(u) && !isSkippedUser(idp, u)) continue;
    for (const g of read.groupsOf.get(u) ?? []) if (snapshotGroups.has(g)) member(g, u);
  }
  for (const g of incidental) if (!memberships.has(g)) memberships.set(g, new Set());
  // Records read but not taken (named, or members of a named group): evidence they exist, and warnings.
  const snapshot: Snapshot = { users: snapshotUsers, groups: snapshotGroups, memberships, skipped: idp.skipped, suspicious: [...idp.suspicious] };
  return { local, snapshot, unaccounted };
}

/**
 * Of the users named in place (SubjectNames.inPlace and leftGroups), those the tenant holds an
 * active account for: in scope as of the tenant's last read of them, so a connector need not ask
 * again (leftGroups: if still in a group that brings them in scope, see leftWithoutGroup).
 */
async function heldActive(tenant: DirectoryRepository, integrationId: string, names: SubjectNames): Promise<string[]> {
  const named = new Set(names.userIds);
  const candidates = unique([...(names.inPlace ?? []), ...(names.leftGroups ?? [])].filter((id) => named.has(id)));
  if (candidates.length === 0) return [];
  const accounts = await tenant.accountsOf(integrationId, candidates);
  return candidates.filter((id) => accounts.get(id)?.active === true);
}

/**
 * Users who left a group (SubjectNames.leftGroups) and were read in place, who are no longer a
 * member of any group the tenant holds (a group in scope brings its members in), nor a member of
 * a group this read found in scope: the group they left may have been what brought them in.
 */
async function leftWithoutGroup(read: SubjectRead, names: SubjectNames, tenant: DirectoryRepository, integrationId: string): Promise<string[]> {
  const assumed = new Set(read.assumedInScope ?? []);
  const candidates = (names.leftGroups ?? []).filter((id) => assumed.has(id));
  if (candidates.length === 0) return [];
  const held = await tenant.groupsOf(integrationId, unique(candidates.flatMap((id) => read.groupsOf.get(id) ?? [])));
  const listed = new Set([...read.snapshot.memberships.values()].flatMap((members) => [...members]));
  return candidates.filter((id) => !listed.has(id) && !(read.groupsOf.get(id) ?? []).some((g) => held.has(g)));
}

/**
 * Two targeted reads as one, `b` read after `a` (users `a` found without an account, or who
 * joined or left a named group; or users asked again another way). `b` is the later word on
 * each user it read, its memberships included: in the groups `a` listed whole, such a user is a
 * member exactly where `b` found it one (it may have joined or left since `a` listed them).
 */
function mergeReads(a: SubjectRead, b: SubjectRead): SubjectRead {
  const reread = new Set(b.userIds);
  const memberships = new Map<string, ReadonlySet<string>>();
  for (const [g, members] of a.snapshot.memberships) {
    const now = new Set([...members].filter((u) => !reread.has(u)));
    for (const u of reread) if (b.groupsOf.get(u)?.includes(g)) now.add(u);
    memberships.set(g, now);
  }
  for (const [g, members] of b.snapshot.memberships) memberships.set(g, new Set([...(memberships.get(g) ?? []), ...members]));
  const first = (r: { kind: string; externalId: string | null }) => !(r.kind === 'user' && r.externalId !== null && reread.has(r.externalId));
  return {
    snapshot: {
      // A user `b` found gone or out of scope is so, whatever `a` saw of it earlier.
      users: new Map([...[...a.snapshot.users].filter(([u]) => !reread.has(u)), ...b.snapshot.users]),
      groups: new Map([...a.snapshot.groups, ...b.snapshot.groups]),
      memberships,
      skipped: [...a.snapshot.skipped.filter(first), ...b.snapshot.skipped],
      suspicious: [...a.snapshot.suspicious, ...b.snapshot.suspicious],
    },
    userIds: unique([...a.userIds, ...b.userIds]),
    assumedInScope: unique([...(a.assumedInScope ?? []).filter((u) => !reread.has(u)), ...(b.assumedInScope ?? [])]),
    unknownLogins: unique([...a.unknownLogins, ...b.unknownLogins]),
    groupsOf: new Map([...[...a.groupsOf].filter(([u]) => !reread.has(u)), ...b.groupsOf]),
    groupIds: unique([...a.groupIds, ...b.groupIds]),
  };
}

function emptySnapshot(): Snapshot {
  return { users: new Map(), groups: new Map(), memberships: new Map(), skipped: [], suspicious: [] };
}

function isSkippedUser(snapshot: Snapshot, userId: string): boolean {
  return snapshot.skipped.some((r) => r.kind === 'user' && r.externalId === userId);
}

function unique(ids: readonly string[]): string[] {
  return [...new Set(ids)];
}
