import type okta from '@okta/okta-sdk-nodejs';
import { SnapshotBuilder } from '../../core/snapshot.js';
import type { SubjectNames, SubjectRead } from '../connector.js';
import { forEachConcurrently } from '../retry.js';
import { jsonPages } from './okta.json-pages.js';
import { type OktaAppGroupLike, type OktaAppUserLike, appGroupToDirectoryGroup, appUserToDirectoryUser, toDirectoryGroup, toDirectoryUser } from './okta.mapping.js';

type Client = InstanceType<typeof okta.Client>;

/** What a targeted read needs of the connector: its client, scope, and requests under its retry policy. */
export interface OktaSubjectRequests {
  readonly client: Client;
  /** The org's base URL, without a trailing slash. */
  readonly orgUrl: string;
  /** The integration's app; without it, the whole org is the scope. */
  readonly appId: string | null | undefined;
  readonly concurrency: number;
  /**
   * One single-resource GET under the read's retry policy: the resource, or undefined when Okta
   * answers that it does not exist (404 E0000007). Throws IdpReadError as the full read does.
   */
  get<T>(endpoint: string, request: () => Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined>;
  /** Every item of a listing, page by page, under the read's retry policy. */
  readAll<T>(endpoint: string, open: () => Promise<unknown>, signal: AbortSignal | undefined, onItem: (item: T) => void): Promise<void>;
}

// The largest page Okta allows for a group's members (IDP-FACTS "Okta management API").
const GROUP_USERS_PAGE = 1_000;

/**
 * Reads named users and groups (SubjectRead), identified by Okta's immutable ids; a login only
 * resolves to its user (`GET /api/v1/users/{login}`, which Okta takes in place of the id).
 * App-scoped: a user is in scope iff `GET /api/v1/apps/{appId}/users/{id}?expand=user` answers (the
 * user comes embedded in the same answer), a group iff `GET /api/v1/apps/{appId}/groups/{id}?expand=group`
 * does. Whole org: `GET /api/v1/users/{id}` and `GET /api/v1/groups/{id}`, where a 404 means gone.
 * A user in scope also costs `GET /api/v1/users/{id}/groups`; a group in scope, its member pages
 * (each member taken as a user in scope and as a member). So one named user costs 2 requests (3
 * for a login when app-scoped, 2 for the whole org, where the login's answer is the user), one
 * out of scope 1. Records are mapped as the full read maps them: a bad one is skipped, alone.
 *
 * App-scoped, a user of `names.inPlace` (the tenant holds it in scope, and nothing named can have
 * moved it out) is read as `GET /api/v1/users/{id}` instead, from the users bucket (600 a minute
 * against the apps bucket's 100 on One App and Enterprise orgs, IDP-FACTS "Okta System Log"), and
 * listed in `assumedInScope`; a 404 there means deleted (out of scope, as the app would say); a
 * DEPROVISIONED user (deactivated, which takes its app assignments away) is asked of the app.
 */
export async function readOktaSubjects(requests: OktaSubjectRequests, names: SubjectNames, signal?: AbortSignal): Promise<SubjectRead> {
  const { client: c, appId } = requests;
  const snapshot = new SnapshotBuilder();
  // Whole-org reads get the user itself when resolving a login: kept, not asked for twice.
  const fetched = new Map<string, object>();
  const resolved = new Map<string, string>();
  const unknownLogins = new Set<string>();
  await forEachConcurrently(unique(names.logins), requests.concurrency, async (login) => {
    const user = await requests.get(`/api/v1/users/${encodeURIComponent(login)}`, () => c.userApi.getUser({ userId: login }), signal);
    if (user === undefined) return void unknownLogins.add(login);
    if (typeof user.id !== 'string') return snapshot.addUserFrom(user as object, toDirectoryUser); // skipped as unidentified
    resolved.set(login, user.id);
    if (!appId) fetched.set(user.id, user as object);
  });
  const userIds = unique([...names.userIds, ...unique(names.logins).flatMap((login) => resolved.get(login) ?? [])]);
  const groupIds = unique(names.groupIds);
  const groupsOf = new Map<string, string[]>();

  // Users the caller holds in scope (SubjectNames.inPlace): read through the users API alone.
  const inPlace = new Set(appId ? (names.inPlace ?? []) : []);
  const assumed = new Set<string>();

  const readUser = async (userId: string) => {
    let inScope: boolean;
    // Read in place: the user alone (deleted: out of scope, as the app would answer). One
    // deactivated since (Okta then removes its app assignments) is asked of the app below.
    const held = inPlace.has(userId) ? await requests.get(`/api/v1/users/${userId}`, () => c.userApi.getUser({ userId }), signal) : undefined;
    if (inPlace.has(userId) && held === undefined) return;
    if (held !== undefined && (held as { status?: unknown }).status !== 'DEPROVISIONED') {
      snapshot.addUserFrom(held as object, toDirectoryUser);
      assumed.add(userId);
      inScope = true;
    } else if (appId) {
      const appUser = await requests.get(
        `/api/v1/apps/${appId}/users/${userId}`,
        () => c.applicationApi.getApplicationUser({ appId, userId, expand: 'user' }),
        signal,
      );
      if ((inScope = appUser !== undefined)) snapshot.addUserFrom(appUser as OktaAppUserLike, appUserToDirectoryUser);
    } else {
      const user = fetched.get(userId) ?? (await requests.get(`/api/v1/users/${userId}`, () => c.userApi.getUser({ userId }), signal));
      if ((inScope = user !== undefined)) snapshot.addUserFrom(user as object, toDirectoryUser);
    }
    if (!inScope) return;
    const list: string[] = [];
    await requests.readAll(`/api/v1/users/${userId}/groups`, () => c.userApi.listUserGroups({ userId }), signal, (g: { id?: unknown }) => {
      if (typeof g.id === 'string') list.push(g.id);
    });
    groupsOf.set(userId, list);
  };

  const readGroup = async (groupId: string) => {
    let inScope: boolean;
    if (appId) {
      const assignment = await requests.get(
        `/api/v1/apps/${appId}/groups/${groupId}`,
        () => c.applicationApi.getApplicationGroupAssignment({ appId, groupId, expand: 'group' }),
        signal,
      );
      if ((inScope = assignment !== undefined)) snapshot.addGroupFrom(assignment as OktaAppGroupLike, appGroupToDirectoryGroup);
    } else {
      // As JSON, as the full read lists groups (okta.json-pages.ts): the SDK's Group model drops custom profile attributes.
      const group = await requests.get(`/api/v1/groups/${groupId}`, () => c.http.getJson(`${requests.orgUrl}/api/v1/groups/${encodeURIComponent(groupId)}`), signal);
      if ((inScope = group !== undefined)) snapshot.addGroupFrom(group as object, toDirectoryGroup);
    }
    if (!inScope) return;
    // A group in scope brings its members into scope (app-scoped: they are assigned through it).
    await requests.readAll(`/api/v1/groups/${groupId}/users`, () => jsonPages(c.groupApi.listGroupUsers({ groupId, limit: GROUP_USERS_PAGE })), signal, (user: { id?: unknown }) => {
      snapshot.addUserFrom(user as object, toDirectoryUser);
      if (typeof user.id === 'string') snapshot.addMember(groupId, user.id);
    });
  };

  const tasks = [...userIds.map((id) => () => readUser(id)), ...groupIds.map((id) => () => readGroup(id))];
  await forEachConcurrently(tasks, requests.concurrency, (task) => task());
  return {
    snapshot: snapshot.build(),
    userIds,
    unknownLogins: unique(names.logins).filter((login) => unknownLogins.has(login)),
    // In the order named, whatever order the reads finished in.
    groupsOf: new Map(userIds.filter((id) => groupsOf.has(id)).map((id) => [id, groupsOf.get(id)!])),
    groupIds,
    assumedInScope: userIds.filter((id) => assumed.has(id)),
  };
}

function unique(list: readonly string[]): string[] {
  return [...new Set(list)];
}
