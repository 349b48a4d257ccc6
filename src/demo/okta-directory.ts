import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback-server.js';

/**
 * An Okta org's management API on 127.0.0.1, for the demo (`dirsync demo`) and as the base of
 * the tests' fake Okta: Okta's JSON shapes for users, groups and app assignments, `Link`-header
 * paging with opaque `after` cursors, rate-limit headers and error bodies, SSWS token
 * authentication, and the listing quirks dirsync depends on (plain /users omits DEPROVISIONED
 * users). The official Okta SDK reads it exactly as it reads a real org. Sources are cited where
 * each shape is made; the directory is changed through the methods below.
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
  /** Cursors this org issued in `next` links: which listing each continues and where. */
  private readonly cursors = new Map<string, { listing: string; start: number }>();
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
    return user;
  }

  updateUser(id: string, change: { status?: OktaStatus; profile?: Record<string, unknown> }): void {
    const user = this.must(this.users, id);
    if (change.status) user.status = change.status;
    if (change.profile) user.profile = { ...user.profile, ...change.profile };
    user.lastUpdated = this.now();
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
    return group;
  }

  addMember(groupId: string, userId: string): void {
    this.must(this.members, groupId).add(userId);
    this.must(this.groups, groupId).lastMembershipUpdated = this.now();
  }

  removeMember(groupId: string, userId: string): void {
    this.must(this.members, groupId).delete(userId);
    this.must(this.groups, groupId).lastMembershipUpdated = this.now();
  }

  addApp(id: string): OktaAppRecord {
    const app: OktaAppRecord = { users: new Set(), groups: new Set() };
    this.apps.set(id, app);
    return app;
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
