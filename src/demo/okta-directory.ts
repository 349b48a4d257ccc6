import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback-server.js';
import { DISPLAY_MESSAGES, type LogTarget, type LoggedEvent, SINCE_LIMIT_MS, logEventJson, parseLogFilter } from './okta-system-log.js';

/**
 * An Okta org's management API on 127.0.0.1, for the demo (`dirsync demo`) and as the base of
 * the tests' fake Okta: Okta's JSON shapes for users, groups and app assignments, `Link`-header
 * paging with opaque `after` cursors, rate-limit headers and error bodies, SSWS token
 * authentication, and the listing quirks dirsync depends on (plain /users omits DEPROVISIONED
 * users); single users, groups and app assignments; and a System Log (`GET /api/v1/logs`) into
 * which every change made through the methods below (or to an app's assignment sets) writes its
 * event. The official Okta SDK reads it exactly as it reads a real org. Sources are cited where
 * each shape is made. Another change made by editing the maps or records directly (tests do) is a
 * change nobody logged: a full run sees it, the System Log does not.
 */

export type OktaStatus =
  | 'STAGED'
  | 'PROVISIONED'
  | 'ACTIVE'
  | 'RECOVERY'
  | 'PASSWORD_EXPIRED'
  | 'LOCKED_OUT'
  | 'SUSPENDED'
  | 'DEPROVISIONED';

export interface OktaUserRecord {
  id: string;
  status: OktaStatus;
  profile: Record<string, unknown> & { login: string };
  lastUpdated: string;
}

export interface OktaGroupRecord {
  id: string;
  type: 'OKTA_GROUP' | 'APP_GROUP' | 'BUILT_IN';
  profile: { name: string; description: string | null } & Record<string, unknown>;
  lastUpdated: string;
  lastMembershipUpdated: string;
}

export interface OktaAppRecord {
  /** Users assigned directly (scope USER). */
  users: Set<string>;
  /** Groups assigned to the app: their members are assigned with scope GROUP. */
  groups: Set<string>;
}

/**
 * An app's assignments: adding or deleting one (through assignUser and the like, or directly,
 * as tests do) writes its System Log event, as every assignment change in Okta does.
 */
class AssignmentSet extends Set<string> {
  constructor(private readonly changed: (id: string, assigned: boolean) => void) {
    super();
  }

  override add(id: string): this {
    if (this.has(id)) return this;
    super.add(id);
    this.changed(id, true);
    return this;
  }

  override delete(id: string): boolean {
    if (!super.delete(id)) return false;
    this.changed(id, false);
    return true;
  }

  override clear(): void {
    for (const id of [...this]) this.delete(id);
  }
}


const T0 = '2024-01-01T00:00:00.000Z';

/** Cursors kept for `next` links (the oldest go first). */
const MAX_CURSORS = 10_000;

export class OktaDirectoryServer extends LoopbackServer {
  readonly users = new Map<string, OktaUserRecord>();
  readonly groups = new Map<string, OktaGroupRecord>();
  readonly members = new Map<string, Set<string>>();
  readonly apps = new Map<string, OktaAppRecord>();
  token = 'fake-okta-token';
  /** The latest requests served (at most `keepRequests`): method and path with query. */
  readonly requests: string[] = [];
  keepRequests = Number.POSITIVE_INFINITY;
  rateLimit = { limit: 600, remaining: 599 };
  /** Caps every page at this many items (tests of paging with few records). */
  maxPageSize: number | undefined;
  /** Rewrites a listing's items (in wire format, before paging): malformed or duplicated records. */
  rewriteList: ((path: string, items: Record<string, unknown>[]) => Record<string, unknown>[]) | undefined;
  /** The System Log, in persistence order (the oldest dropped beyond `maxLogEvents`). */
  readonly log: LoggedEvent[] = [];
  maxLogEvents = 100_000;
  /** Rewrites `published` as an event is logged (tests of events published out of order). */
  publishedOf: ((persistedAt: number) => string) | undefined;
  /** Cursors this org issued in `next` links: which listing each continues and where. */
  private readonly cursors = new Map<string, { listing: string; start: number }>();
  /** System Log cursors: which filter each continues, and the sequence number it continues after. */
  private readonly logCursors = new Map<string, { listing: string; after: number }>();
  /** Sequence number of the next logged event (log[0] has `logSeq - log.length`). */
  private logSeq = 0;
  private logging = true;
  private seq = 0;

  // ---- directory mutations -------------------------------------------------------------

  addUser(login: string, opts: { id?: string; status?: OktaStatus; profile?: Record<string, unknown> } = {}): OktaUserRecord {
    const id = opts.id ?? `00u${this.nextId()}`;
    const [first = 'First', last = 'Last'] = login.split('@')[0]!.split('.');
    const user: OktaUserRecord = {
      id,
      status: opts.status ?? 'ACTIVE',
      profile: { login, email: login, firstName: cap(first), lastName: cap(last), ...opts.profile },
      lastUpdated: this.now(),
    };
    this.users.set(id, user);
    this.logEvent('user.lifecycle.create', [this.userTarget(user)]);
    if (user.status === 'ACTIVE') this.logEvent('user.lifecycle.activate', [this.userTarget(user)]);
    return user;
  }

  /** A status change logs its lifecycle event (Okta's Event Types), a profile change user.account.update_profile. */
  updateUser(id: string, change: { status?: OktaStatus; profile?: Record<string, unknown> }): void {
    const user = this.must(this.users, id);
    const before = user.status;
    if (change.status) user.status = change.status;
    if (change.profile) user.profile = { ...user.profile, ...change.profile };
    user.lastUpdated = this.now();
    if (change.profile) this.logEvent('user.account.update_profile', [this.userTarget(user)]);
    const lifecycle = change.status && change.status !== before ? lifecycleEvent(before, change.status) : undefined;
    if (lifecycle) this.logEvent(lifecycle, [this.userTarget(user)]);
  }

  /** Deletes a user (Okta deletes only deactivated users; not enforced here): gone from its groups and apps too. */
  deleteUser(id: string): void {
    const user = this.must(this.users, id);
    for (const app of this.apps.values()) app.users.delete(id);
    for (const [groupId, members] of this.members) if (members.delete(id)) this.groups.get(groupId)!.lastMembershipUpdated = this.now();
    this.users.delete(id);
    this.logEvent('user.lifecycle.delete.initiated', [this.userTarget(user)]);
  }

  addGroup(name: string, opts: { id?: string; description?: string | null; type?: OktaGroupRecord['type'] } = {}): OktaGroupRecord {
    const id = opts.id ?? `00g${this.nextId()}`;
    const group: OktaGroupRecord = {
      id,
      type: opts.type ?? 'OKTA_GROUP',
      profile: { name, description: opts.description ?? null },
      lastUpdated: this.now(),
      lastMembershipUpdated: this.now(),
    };
    this.groups.set(id, group);
    this.members.set(id, new Set());
    this.logEvent('group.lifecycle.create', [this.groupTarget(group)]);
    return group;
  }

  updateGroup(id: string, profile: { name?: string; description?: string | null }): void {
    const group = this.must(this.groups, id);
    group.profile = { ...group.profile, ...profile };
    group.lastUpdated = this.now();
    this.logEvent('group.profile.update', [this.groupTarget(group)]);
  }

  /** Deletes a group: its memberships and app assignments go with it. */
  deleteGroup(id: string): void {
    const group = this.must(this.groups, id);
    for (const app of this.apps.values()) app.groups.delete(id);
    this.groups.delete(id);
    this.members.delete(id);
    this.logEvent('group.lifecycle.delete', [this.groupTarget(group)]);
  }

  addMember(groupId: string, userId: string): void {
    this.must(this.members, groupId).add(userId);
    const group = this.must(this.groups, groupId);
    group.lastMembershipUpdated = this.now();
    this.logEvent('group.user_membership.add', [this.groupTarget(group), this.userTarget(userId)]);
  }

  removeMember(groupId: string, userId: string): void {
    this.must(this.members, groupId).delete(userId);
    const group = this.must(this.groups, groupId);
    group.lastMembershipUpdated = this.now();
    this.logEvent('group.user_membership.remove', [this.groupTarget(group), this.userTarget(userId)]);
  }

  addApp(id: string): OktaAppRecord {
    const app: OktaAppRecord = {
      users: new AssignmentSet((userId, assigned) =>
        this.logEvent(assigned ? 'application.user_membership.add' : 'application.user_membership.remove', this.appUserTargets(id, userId)),
      ),
      groups: new AssignmentSet((groupId, assigned) =>
        this.logEvent(assigned ? 'group.application_assignment.add' : 'group.application_assignment.remove', [appTarget(id), this.groupTarget(groupId)]),
      ),
    };
    this.apps.set(id, app);
    return app;
  }

  /** Assigns a user to the app directly (scope USER). */
  assignUser(appId: string, userId: string): void {
    this.must(this.apps, appId).users.add(userId);
  }

  unassignUser(appId: string, userId: string): void {
    this.must(this.apps, appId).users.delete(userId);
  }

  /** Assigns a group to the app: its members reach the app with scope GROUP. */
  assignGroup(appId: string, groupId: string): void {
    this.must(this.groups, groupId);
    this.must(this.apps, appId).groups.add(groupId);
  }

  unassignGroup(appId: string, groupId: string): void {
    this.must(this.apps, appId).groups.delete(groupId);
  }

  /** Makes `change` without logging it: an org as it was before the log's window (tests' set-up). */
  withoutLog<T>(change: () => T): T {
    this.logging = false;
    try {
      return change();
    } finally {
      this.logging = true;
    }
  }

  /** Writes an event to the System Log, as Okta does for every change (at-least-once, in persistence order). */
  logEvent(eventType: string, target: readonly LogTarget[]): LoggedEvent | undefined {
    if (!this.logging) return undefined;
    const persistedAt = Date.now();
    const event: LoggedEvent = {
      uuid: randomUUID(),
      persistedAt,
      published: this.publishedOf?.(persistedAt) ?? new Date(persistedAt).toISOString(),
      eventType,
      displayMessage: DISPLAY_MESSAGES[eventType] ?? eventType,
      target,
    };
    this.log.push(event);
    this.logSeq += 1;
    if (this.log.length > this.maxLogEvents) this.log.splice(0, this.log.length - this.maxLogEvents);
    return event;
  }

  /** Events logged from now on: the System Log's length, to hand to `loggedSince`. */
  logMark(): number {
    return this.logSeq;
  }

  /** The events logged since `mark` (logMark), oldest first: what an event hook delivers. */
  loggedSince(mark: number): LoggedEvent[] {
    return this.log.slice(Math.max(0, this.log.length - (this.logSeq - mark)));
  }

  /** A user as an event's target; one the directory does not hold (a test's made-up id) by its id alone. */
  private userTarget(user: OktaUserRecord | string): LogTarget {
    const u = typeof user === 'string' ? this.users.get(user) : user;
    if (!u) return { id: user as string, type: 'User', alternateId: 'unknown', displayName: 'unknown' };
    const name = [u.profile.firstName, u.profile.lastName].filter((p) => typeof p === 'string' && p).join(' ');
    return { id: u.id, type: 'User', alternateId: u.profile.login, displayName: name || u.profile.login };
  }

  /** A group as an event's target; one the directory does not hold by its id alone. */
  private groupTarget(group: OktaGroupRecord | string): LogTarget {
    const g = typeof group === 'string' ? this.groups.get(group) : group;
    if (!g) return { id: group as string, type: 'UserGroup', alternateId: 'unknown', displayName: 'unknown' };
    return { id: g.id, type: 'UserGroup', alternateId: g.profile.name, displayName: g.profile.name };
  }

  /** application.user_membership.* target the app assignment (AppUser, its own 0ua id), the app and the user. */
  private appUserTargets(appId: string, userId: string): LogTarget[] {
    const user = this.userTarget(userId);
    return [{ ...user, id: `0ua${userId.slice(3)}`, type: 'AppUser' }, appTarget(appId), user];
  }

  /** Users the app reaches: direct assignments plus members of assigned groups. */
  appUserScopes(appId: string): Map<string, 'USER' | 'GROUP'> {
    const app = this.must(this.apps, appId);
    const scopes = new Map<string, 'USER' | 'GROUP'>();
    for (const g of app.groups) for (const u of this.members.get(g) ?? []) scopes.set(u, 'GROUP');
    for (const u of app.users) scopes.set(u, 'USER');
    return scopes;
  }

  // ---- wire format ---------------------------------------------------------------------

  userJson(u: OktaUserRecord): Record<string, unknown> {
    return {
      id: u.id,
      status: u.status,
      created: T0,
      activated: u.status === 'STAGED' ? null : T0,
      statusChanged: u.lastUpdated,
      lastLogin: u.lastUpdated,
      lastUpdated: u.lastUpdated,
      passwordChanged: T0,
      type: { id: 'oty1defaulttype' },
      profile: u.profile,
      credentials: {
        password: {},
        provider: { type: 'OKTA', name: 'OKTA' },
      },
      _links: { self: { href: `${this.url}/api/v1/users/${u.id}` } },
    };
  }

  groupJson(g: OktaGroupRecord): Record<string, unknown> {
    return {
      id: g.id,
      created: T0,
      lastUpdated: g.lastUpdated,
      lastMembershipUpdated: g.lastMembershipUpdated,
      objectClass: ['okta:user_group'],
      type: g.type,
      profile: g.profile,
      _links: {
        logo: [{ name: 'medium', href: 'https://op1static.oktacdn.com/assets/img/logos/groups/okta-medium.png', type: 'image/png' }],
        users: { href: `${this.url}/api/v1/groups/${g.id}/users` },
        apps: { href: `${this.url}/api/v1/groups/${g.id}/apps` },
      },
    };
  }

  // Okta embeds the user (`_embedded.user`) in an app user, and the group (`_embedded.group`) in an
  // app group assignment, only when `expand=user` / `expand=group` is asked for; otherwise there is no
  // `_embedded` at all. Source: the `expand` parameter of listApplicationUsers ("return the corresponding
  // User object in the _embedded property. Valid value: user") and listApplicationGroupAssignments in
  // Okta's management OpenAPI spec, as @okta/okta-sdk-nodejs 8.1 carries it
  // (src/generated/apis/ApplicationApi.js).
  private appUserJson(appId: string, u: OktaUserRecord, scope: 'USER' | 'GROUP', expand: boolean): Record<string, unknown> {
    return {
      id: u.id,
      externalId: null,
      created: T0,
      lastUpdated: u.lastUpdated,
      scope,
      status: u.status === 'DEPROVISIONED' ? 'INACTIVE' : 'ACTIVE',
      statusChanged: T0,
      passwordChanged: null,
      syncState: 'DISABLED',
      credentials: { userName: u.profile.login },
      profile: {},
      _links: {
        app: { href: `${this.url}/api/v1/apps/${appId}` },
        user: { href: `${this.url}/api/v1/users/${u.id}` },
      },
      ...(expand ? { _embedded: { user: this.userJson(u) } } : {}),
    };
  }

  private appGroupJson(appId: string, g: OktaGroupRecord, expand: boolean): Record<string, unknown> {
    return {
      id: g.id,
      lastUpdated: g.lastUpdated,
      priority: 0,
      profile: {},
      _links: {
        app: { href: `${this.url}/api/v1/apps/${appId}` },
        group: { href: `${this.url}/api/v1/groups/${g.id}` },
      },
      ...(expand ? { _embedded: { group: this.groupJson(g) } } : {}),
    };
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    this.answer(req, res);
  }

  /** A request answered before the management API (the tests' faults and OAuth token endpoint); true when it was. */
  protected intercept(_req: IncomingMessage, _res: ServerResponse, _url: URL): boolean {
    return false;
  }

  /** A request without this org's SSWS token: refused with Okta's 401 (the tests' fake also takes OAuth access tokens). */
  protected authorizeOther(_req: IncomingMessage, res: ServerResponse, _url: URL, _family: string | undefined): (() => void) | undefined {
    return () => this.error(res, 401, 'E0000011', 'Invalid token provided');
  }

  protected answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (this.requests.length > this.keepRequests) this.requests.splice(0, this.requests.length - this.keepRequests);
    if (this.intercept(req, res, url)) return;
    const parts = url.pathname.split('/').filter(Boolean); // api v1 ...
    const header = req.headers.authorization ?? '';
    const refusal = header === `SSWS ${this.token}` ? undefined : this.authorizeOther(req, res, url, parts[2]);
    if (refusal) return refusal();
    const q = url.searchParams;
    try {
      if (req.method !== 'GET') return this.error(res, 405, 'E0000022', 'The endpoint does not support the provided HTTP method');
      if (parts[2] === 'users' && parts.length === 3) {
        const filter = q.get('filter');
        let list = [...this.users.values()];
        const status = filter?.match(/^status eq "([A-Z_]+)"$/)?.[1];
        if (filter && !status) return this.error(res, 400, 'E0000031', 'Invalid search criteria.');
        list = status ? list.filter((u) => u.status === status) : list.filter((u) => u.status !== 'DEPROVISIONED');
        return this.page(res, url, list.sort(byId).map((u) => this.userJson(u)), 200);
      }
      if (parts[2] === 'users' && parts.length === 4) {
        // Okta takes the login (or an unambiguous login shortname) in place of the id (UserApi.getUser's `userId`).
        const key = decodeURIComponent(parts[3]!);
        const user = this.users.get(key) ?? [...this.users.values()].find((u) => u.profile.login.toLowerCase() === key.toLowerCase());
        if (!user) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${key} (User)`);
        return this.json(res, this.userJson(user));
      }
      if (parts[2] === 'groups' && parts.length === 4) {
        const group = this.groups.get(decodeURIComponent(parts[3]!));
        if (!group) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${parts[3]} (UserGroup)`);
        return this.json(res, this.groupJson(group));
      }
      if (parts[2] === 'logs' && parts.length === 3) return this.logs(res, url);
      if (parts[2] === 'users' && parts[4] === 'groups' && parts.length === 5) {
        if (!this.users.has(parts[3]!)) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${parts[3]} (User)`);
        const list = [...this.members].filter(([, m]) => m.has(parts[3]!)).map(([g]) => this.groups.get(g)!);
        return this.page(res, url, list.sort(byId).map((g) => this.groupJson(g)), 10_000);
      }
      if (parts[2] === 'groups' && parts.length === 3) {
        return this.page(res, url, [...this.groups.values()].sort(byId).map((g) => this.groupJson(g)), 10_000);
      }
      if (parts[2] === 'groups' && parts[4] === 'users' && parts.length === 5) {
        const members = this.members.get(parts[3]!);
        if (!members) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${parts[3]} (UserGroup)`);
        const list = [...members].map((id) => this.users.get(id)).filter((u): u is OktaUserRecord => !!u);
        return this.page(res, url, list.sort(byId).map((u) => this.userJson(u)), 1_000);
      }
      // One assignment: 404 when the user (group) is not assigned. The resource name in the 404's summary
      // is not documented for these two; the app's own absence says (AppInstance), as the listings do.
      if (parts[2] === 'apps' && parts.length === 6 && (parts[4] === 'users' || parts[4] === 'groups')) {
        const appId = parts[3]!;
        const id = decodeURIComponent(parts[5]!);
        if (!this.apps.has(appId)) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${appId} (AppInstance)`);
        if (parts[4] === 'users') {
          const scope = this.appUserScopes(appId).get(id);
          if (!scope) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${id} (AppUser)`);
          return this.json(res, this.appUserJson(appId, this.users.get(id)!, scope, expands(q, 'user')));
        }
        if (!this.apps.get(appId)!.groups.has(id) || !this.groups.has(id)) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${id} (ApplicationGroupAssignment)`);
        return this.json(res, this.appGroupJson(appId, this.groups.get(id)!, expands(q, 'group')));
      }
      if (parts[2] === 'apps' && parts.length === 5) {
        const appId = parts[3]!;
        if (!this.apps.has(appId)) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${appId} (AppInstance)`);
        if (parts[4] === 'users') {
          const scopes = this.appUserScopes(appId);
          const expand = expands(q, 'user');
          const list = [...scopes.keys()].sort().map((id) => this.appUserJson(appId, this.users.get(id)!, scopes.get(id)!, expand));
          return this.page(res, url, list, 50, 500);
        }
        if (parts[4] === 'groups') {
          const app = this.apps.get(appId)!;
          const expand = expands(q, 'group');
          const list = [...app.groups].sort().map((id) => this.appGroupJson(appId, this.groups.get(id)!, expand));
          return this.page(res, url, list, 20, 200);
        }
      }
      return this.error(res, 404, 'E0000022', 'The endpoint does not support the provided HTTP method');
    } catch (error) {
      return this.error(res, 500, 'E0000009', `Internal Server Error: ${(error as Error).message}`);
    }
  }

  /**
   * One page of `list`, with Okta's Link headers: `self` always, `next` unless it is the last page.
   *
   * Okta's cursors are opaque and only valid as Okta hands them out in a `next` link ("Treat this as an
   * opaque value obtained through the next link relationship", the `after` parameter in Okta's
   * management OpenAPI spec, @okta/okta-sdk-nodejs src/generated/apis/*.js). So this fake accepts only a
   * cursor it issued, and only on the listing it issued it for (same path, same filter and expand): any
   * other `after` (made up, parsed and edited, taken from another listing) is refused with a 400 rather
   * than answered as an empty last page, so a paging bug fails the read loudly instead of truncating it.
   * The exact body Okta sends for a foreign cursor is not documented; the fake answers Okta's generic
   * validation error (E0000001 "Api validation failed", HTTP 400, Okta's error-code reference) naming
   * the parameter, as Okta's validation errors do.
   */
  protected page(res: ServerResponse, url: URL, all: Record<string, unknown>[], defaultLimit: number, maxLimit = defaultLimit): void {
    const listing = listingOf(url);
    const after = url.searchParams.get('after');
    let start = 0;
    if (after !== null) {
      const cursor = this.cursors.get(after);
      if (!cursor || cursor.listing !== listing) {
        return this.error(res, 400, 'E0000001', 'Api validation failed: after', {}, [{ errorSummary: `after: '${after}' is not a cursor of this listing` }]);
      }
      start = cursor.start;
    }
    const list = this.rewriteList?.(url.pathname, all) ?? all;
    const limit = Math.min(Number(url.searchParams.get('limit') ?? defaultLimit) || defaultLimit, maxLimit, this.maxPageSize ?? Infinity);
    const items = list.slice(start, start + limit);
    const links = [`<${this.url}${url.pathname}${url.search}>; rel="self"`];
    if (start + limit < list.length) {
      const cursor = randomBytes(12).toString('base64url');
      this.cursors.set(cursor, { listing, start: start + limit });
      // Okta's cursors do not expire within a read; a long-running demo need not keep them all.
      if (this.cursors.size > MAX_CURSORS) this.cursors.delete(this.cursors.keys().next().value!);
      const next = new URL(url.toString());
      next.searchParams.set('after', cursor);
      next.searchParams.set('limit', String(limit));
      links.push(`<${this.url}${next.pathname}${next.search}>; rel="next"`);
    }
    res.writeHead(200, { 'content-type': 'application/json', link: links, ...this.rateHeaders() });
    res.end(JSON.stringify(items));
  }

  /**
   * GET /api/v1/logs. The polling form (`sortOrder=ASCENDING`, no `until`) always has a `next` link,
   * even on an empty page, continuing after the last event returned; a client polls it for what
   * is logged later. `since` (default 7 days ago) compares persistence time and may not be older
   * than 180 days (400); `after` is a cursor from a `next` link of the same filter (else 400, as for
   * every listing here); `limit` 0-1000 (default 100); `filter` as parseLogFilter reads it.
   * Other forms (`until`, DESCENDING) answer one bounded page set without the polling link.
   */
  private logs(res: ServerResponse, url: URL): void {
    const q = url.searchParams;
    const filterText = q.get('filter');
    const filter = filterText === null ? () => true : parseLogFilter(filterText);
    if (!filter) return this.error(res, 400, 'E0000001', 'Api validation failed: filter', {}, [{ errorSummary: `filter: '${filterText}' is not a valid filter expression` }]);
    const polling = (q.get('sortOrder') ?? 'ASCENDING') === 'ASCENDING' && !q.get('until');
    const listing = `filter=${filterText ?? ''}&sortOrder=${q.get('sortOrder') ?? ''}&until=${q.get('until') ?? ''}`;
    const first = this.logSeq - this.log.length;
    let afterSeq: number;
    const after = q.get('after');
    if (after !== null) {
      const cursor = this.logCursors.get(after);
      if (!cursor || cursor.listing !== listing) {
        return this.error(res, 400, 'E0000001', 'Api validation failed: after', {}, [{ errorSummary: `after: '${after}' is not a cursor of this listing` }]);
      }
      afterSeq = cursor.after;
    } else {
      const since = q.get('since') ? Date.parse(q.get('since')!) : Date.now() - 7 * 24 * 3600_000;
      if (!Number.isFinite(since)) return this.error(res, 400, 'E0000001', 'Api validation failed: since', {}, [{ errorSummary: 'since: is not a valid ISO 8601 timestamp' }]);
      if (since < Date.now() - SINCE_LIMIT_MS) {
        return this.error(res, 400, 'E0000001', 'Api validation failed: since', {}, [{ errorSummary: 'since: The since parameter must be no earlier than 180 days ago' }]);
      }
      const at = this.log.findIndex((e) => e.persistedAt >= since);
      afterSeq = (at === -1 ? this.logSeq : first + at) - 1;
    }
    const until = q.get('until') ? Date.parse(q.get('until')!) : Infinity;
    const limit = Math.min(Math.max(Number(q.get('limit') ?? 100) || 0, 0), 1000);
    const items: LoggedEvent[] = [];
    let seq = Math.max(afterSeq + 1, first);
    for (; seq < this.logSeq && items.length < limit; seq++) {
      const e = this.log[seq - first]!;
      if (e.persistedAt > until) break;
      if (filter(e)) items.push(e);
    }
    const ordered = q.get('sortOrder') === 'DESCENDING' ? items.reverse() : items;
    const links = [`<${this.url}${url.pathname}${url.search}>; rel="self"`];
    if (polling || (seq < this.logSeq && items.length === limit)) {
      const cursor = randomBytes(12).toString('base64url');
      this.logCursors.set(cursor, { listing, after: seq - 1 });
      if (this.logCursors.size > MAX_CURSORS) this.logCursors.delete(this.logCursors.keys().next().value!);
      const next = new URL(url.toString());
      next.searchParams.delete('since');
      next.searchParams.set('after', cursor);
      next.searchParams.set('limit', String(limit));
      links.push(`<${this.url}${next.pathname}${next.search}>; rel="next"`);
    }
    res.writeHead(200, { 'content-type': 'application/json', link: links, ...this.rateHeaders() });
    res.end(JSON.stringify(ordered.map(logEventJson)));
  }

  protected json(res: ServerResponse, body: Record<string, unknown>): void {
    res.writeHead(200, { 'content-type': 'application/json', ...this.rateHeaders() });
    res.end(JSON.stringify(body));
  }

  protected error(
    res: ServerResponse,
    status: number,
    code: string,
    summary: string,
    headers: Record<string, string> = {},
    errorCauses: { errorSummary: string }[] = [],
  ): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers, ...this.rateHeaders() });
    res.end(JSON.stringify({ errorCode: code, errorSummary: summary, errorLink: code, errorId: `oae${this.nextId()}`, errorCauses }));
  }

  rateHeaders(): Record<string, string> {
    return {
      date: new Date().toUTCString(),
      'x-rate-limit-limit': String(this.rateLimit.limit),
      'x-rate-limit-remaining': String(this.rateLimit.remaining),
      'x-rate-limit-reset': String(Math.floor(Date.now() / 1000) + 60),
    };
  }

  private nextId(): string {
    this.seq += 1;
    return `${this.seq.toString(36).padStart(6, '0')}fake`;
  }

  private now(): string {
    return new Date(Date.parse(T0) + ++this.seq * 1000).toISOString();
  }

  private must<K, V>(map: Map<K, V>, key: K): V {
    const value = map.get(key);
    if (value === undefined) throw new Error(`the Okta directory has no ${String(key)}`);
    return value;
  }
}

/** The lifecycle event a status change logs (Okta's Event Types: user.lifecycle.*). */
function lifecycleEvent(from: OktaStatus, to: OktaStatus): string | undefined {
  if (to === 'SUSPENDED') return 'user.lifecycle.suspend';
  if (to === 'DEPROVISIONED') return 'user.lifecycle.deactivate';
  if (from === 'SUSPENDED' && to === 'ACTIVE') return 'user.lifecycle.unsuspend';
  if (to === 'ACTIVE') return 'user.lifecycle.activate';
  return undefined;
}

function appTarget(appId: string): LogTarget {
  return { id: appId, type: 'AppInstance', alternateId: appId, displayName: appId };
}

/** Whether `expand` asks for `what` (Okta takes one value; a comma list is tolerated). */
function expands(q: URLSearchParams, what: string): boolean {
  return (q.get('expand') ?? '').split(',').map((s) => s.trim()).includes(what);
}

/** A listing's identity for its cursors: the path and every query parameter but the cursor and page size. */
function listingOf(url: URL): string {
  const q = new URLSearchParams(url.searchParams);
  q.delete('after');
  q.delete('limit');
  q.sort();
  return `${url.pathname}?${q.toString()}`;
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
