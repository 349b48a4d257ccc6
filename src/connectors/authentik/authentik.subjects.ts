import { SnapshotBuilder } from '../../core/snapshot.js';
import type { SubjectNames, SubjectRead } from '../connector.js';
import { forEachConcurrently } from '../retry.js';
import { type ApplicationAccess, type AuthentikClient, GONE, PAGE_SIZE, stringList } from './authentik.client.js';
import { type AuthentikGroupLike, type AuthentikUserLike, SERVICE_ACCOUNT_TYPES, toDirectoryGroup, toDirectoryUser } from './authentik.mapping.js';
import { ancestorsOf, appScope, descendantsOf } from './authentik.scope.js';

/** Named users read at once: authentik documents no API rate limit, so only a modest bound. */
const CONCURRENCY = 8;

/** Group pks per member listing: 50 dashed UUIDs keep the URL near 2.5 kB (servers allow 8 kB). */
export const GROUPS_PER_LISTING = 50;

/**
 * A targeted read of named authentik users and groups, with exactly the full read's rules:
 * service accounts (`service_account`, `internal_service_account`) are never in scope; with an
 * application its policy bindings decide (a user bound directly, or a member of a bound group or
 * of a group below it; `negate`, engine mode, disabled and policy bindings as in appScope),
 * without one everyone is; a group is in scope when bound (not negated), or always without an
 * application; a group's members include the members of the groups below it; records map
 * through authentik.mapping.ts, so a bad record is skipped alone.
 *
 * Requests (each with the full read's retry policy, counted in `stats.requests`):
 * - per call: with an application, 1 for the application and 1 per 500 of its bindings; and the
 *   group hierarchy (`/core/groups/`, 1 per 500 groups) when a named group or a named user's
 *   groups need it (ancestors decide scope and membership, descendants a group's members);
 * - per named user id: 1 (`GET /core/users/{pk}/`; 404 with authentik's body = gone);
 * - per named login: 1 (`GET /core/users/?username=`; no result = unknown login);
 * - per named group in scope: 1 per 500 members (`/core/users/?groups_by_pk=` the group and the
 *   groups below it, GROUPS_PER_LISTING pks a listing). A named group's record comes from the
 *   hierarchy listing: absent = gone.
 */
export async function readAuthentikSubjects(
  client: AuthentikClient,
  appSlug: string | null,
  names: SubjectNames,
  signal?: AbortSignal,
): Promise<SubjectRead> {
  const access = appSlug ? await client.applicationAccess(appSlug, signal) : undefined;
  const named = await readNamedUsers(client, names, signal);

  const people = (records: Iterable<AuthentikUserLike>) => [...records].filter((u) => !(typeof u.type === 'string' && SERVICE_ACCOUNT_TYPES.has(u.type)));
  const namedPeople = people(named.records.values());
  const groupIds = unique(names.groupIds);
  const needsHierarchy = groupIds.length > 0 || namedPeople.some((u) => stringList(u.groups).length > 0);
  const groups = needsHierarchy ? await readGroups(client, signal) : new Map<string, AuthentikGroupLike>();
  const groupParents = new Map([...groups].map(([pk, g]) => [pk, stringList(g.parents)]));
  const boundGroups = access ? appScope({ ...scopeInput(access, groupParents), userGroups: new Map() }).groups : ('all' as const);
  const groupInScope = (pk: string) => groups.has(pk) && (boundGroups === 'all' || boundGroups.has(pk));

  // Members of each named group in scope, counting members of the groups below it.
  const members = new Map<string, AuthentikUserLike>();
  const below = descendantsOf(groupParents);
  for (const pk of groupIds.filter(groupInScope)) {
    const listed = [pk, ...below(pk)];
    // A deep hierarchy would make one URL too long for proxies: a few dozen groups per listing.
    for (let at = 0; at < listed.length; at += GROUPS_PER_LISTING) {
      const chunk = listed.slice(at, at + GROUPS_PER_LISTING);
      for await (const u of client.pages(`GET /api/v3/core/users/?groups_by_pk=${pk}`, signal, (page) =>
        client.core.coreUsersList({ groupsByPk: chunk, page, pageSize: PAGE_SIZE, includeGroups: false, includeRoles: false }),
      )) {
        members.set(String(u.pk), u);
      }
    }
  }

  const candidates = new Map<string, AuthentikUserLike>();
  for (const u of [...people(members.values()), ...namedPeople]) candidates.set(String(u.pk), u);
  const userGroups = new Map([...candidates].map(([pk, u]) => [pk, stringList(u.groups)]));
  const scope = access ? appScope({ ...scopeInput(access, groupParents), userGroups }) : undefined;
  if (scope) client.stats.ignoredPolicyBindings = scope.ignoredPolicyBindings;
  const userInScope = (pk: string) => candidates.has(pk) && (scope === undefined || scope.users === 'all' || scope.users.has(pk));

  const above = ancestorsOf(groupParents);
  const effectiveGroups = (pk: string) => {
    const all = new Set<string>();
    for (const g of userGroups.get(pk) ?? []) {
      all.add(g);
      for (const a of above(g)) all.add(a);
    }
    return all;
  };

  const snapshot = new SnapshotBuilder();
  for (const [pk, u] of candidates) if (userInScope(pk)) snapshot.addUserFrom(u, toDirectoryUser);
  for (const pk of groupIds.filter(groupInScope)) {
    snapshot.addGroupFrom(groups.get(pk) as AuthentikGroupLike, toDirectoryGroup);
    for (const memberPk of members.keys()) if (effectiveGroups(memberPk).has(pk)) snapshot.addMember(pk, memberPk);
  }
  if (needsHierarchy && boundGroups !== 'all') {
    // As in the full read: a bound group the listing lacks means the token may not view groups.
    const missing = [...boundGroups].filter((g) => !groups.has(g)).sort();
    if (missing.length > 0) {
      snapshot.suspect(
        `application ${appSlug}'s policy bindings name ${missing.length} group(s) that the groups listing lacks (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}); check that the token's user may view groups`,
      );
    }
  }

  const groupsOf = new Map<string, readonly string[]>();
  for (const pk of named.userIds) if (userInScope(pk)) groupsOf.set(pk, [...effectiveGroups(pk)].sort());
  return { snapshot: snapshot.build(), userIds: named.userIds, unknownLogins: named.unknownLogins, groupsOf, groupIds };
}

function scopeInput(access: ApplicationAccess, groupParents: ReadonlyMap<string, readonly string[]>) {
  return { mode: access.mode, bindings: access.bindings, groupParents };
}

interface NamedUsers {
  /** Every named user read, in the order named (logins resolved), gone ones included. */
  readonly userIds: string[];
  readonly unknownLogins: string[];
  /** pk -> record, for the users that exist. */
  readonly records: Map<string, AuthentikUserLike>;
}

async function readNamedUsers(client: AuthentikClient, names: SubjectNames, signal: AbortSignal | undefined): Promise<NamedUsers> {
  const byId = new Map<string, AuthentikUserLike | typeof GONE>();
  const byLogin = new Map<string, AuthentikUserLike | undefined>();
  const ids = unique(names.userIds);
  const logins = unique(names.logins);
  await forEachConcurrently(ids, CONCURRENCY, async (id) => {
    // authentik user pks are integers: any other id names no user.
    if (!/^(0|[1-9][0-9]{0,14})$/.test(id)) return void byId.set(id, GONE);
    const found = await client.retrieve(`GET /api/v3/core/users/${id}/`, signal, () => client.core.coreUsersRetrieve({ id: Number(id) }));
    if (found !== GONE) client.stats.records += 1;
    byId.set(id, found);
  });
  await forEachConcurrently(logins, CONCURRENCY, async (login) => {
    const page = await client.request('GET /api/v3/core/users/?username=', signal, () =>
      client.core.coreUsersList({ username: login, page: 1, pageSize: PAGE_SIZE, includeGroups: false, includeRoles: false }),
    );
    // `username` is an exact filter and usernames are unique; the check guards a server that ignores it.
    const found = (Array.isArray(page?.results) ? page.results : []).find((u) => u.username === login);
    if (found) client.stats.records += 1;
    byLogin.set(login, found);
  });

  const userIds: string[] = [];
  const records = new Map<string, AuthentikUserLike>();
  for (const id of ids) {
    const found = byId.get(id);
    userIds.push(id);
    if (found !== undefined && found !== GONE) records.set(id, found);
  }
  const unknownLogins: string[] = [];
  for (const login of logins) {
    const found = byLogin.get(login);
    if (!found) {
      unknownLogins.push(login);
      continue;
    }
    const pk = String(found.pk);
    if (!records.has(pk)) userIds.push(pk);
    records.set(pk, found);
  }
  return { userIds: unique(userIds), unknownLogins, records };
}

/** Every group (pk -> record), paged as the full read pages them. */
async function readGroups(client: AuthentikClient, signal: AbortSignal | undefined): Promise<Map<string, AuthentikGroupLike>> {
  const groups = new Map<string, AuthentikGroupLike>();
  for await (const g of client.pages('GET /api/v3/core/groups/', signal, (page) => client.core.coreGroupsList({ page, pageSize: PAGE_SIZE, includeUsers: false }))) {
    groups.set(String(g.pk), g);
  }
  return groups;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
