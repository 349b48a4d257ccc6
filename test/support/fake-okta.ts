import type { IncomingMessage, ServerResponse } from 'node:http';
import { type FaultInjector, serveFault } from './faults.js';
import { LoopbackServer } from './loopback-server.js';

/**
 * A fake Okta org on 127.0.0.1 speaking Okta's management API wire format: the JSON shapes,
 * Link-header paging with opaque `after` cursors, rate-limit headers, error bodies, and the
 * listing quirks dirsync depends on (plain /users omits DEPROVISIONED users). Tests mutate
 * the directory between syncs and can inject faults per request.
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

export interface FakeUser {
  id: string;
  status: OktaStatus;
  profile: Record<string, unknown> & { login: string };
  lastUpdated: string;
}

export interface FakeGroup {
  id: string;
  type: 'OKTA_GROUP' | 'APP_GROUP' | 'BUILT_IN';
  profile: { name: string; description: string | null } & Record<string, unknown>;
  lastUpdated: string;
  lastMembershipUpdated: string;
}

export interface FakeApp {
  /** Users assigned directly (scope USER). */
  users: Set<string>;
  /** Groups assigned to the app: their members are assigned with scope GROUP. */
  groups: Set<string>;
}

export type { FaultInjector, InjectedResponse } from './faults.js';

const T0 = '2024-01-01T00:00:00.000Z';

export class FakeOkta extends LoopbackServer {
  readonly users = new Map<string, FakeUser>();
  readonly groups = new Map<string, FakeGroup>();
  readonly members = new Map<string, Set<string>>();
  readonly apps = new Map<string, FakeApp>();
  token = 'fake-okta-token';
  /** Every request served: method and path with query. */
  readonly requests: string[] = [];
  fault: FaultInjector | undefined;
  rateLimit = { limit: 600, remaining: 599 };
  /** Caps every page at this many items (tests of paging with few records). */
  maxPageSize: number | undefined;
  /** Delays every answer (a slow IdP). */
  responseDelayMs = 0;
  /** Rewrites a listing's items (in wire format, before paging): malformed or duplicated records. */
  rewriteList: ((path: string, items: Record<string, unknown>[]) => Record<string, unknown>[]) | undefined;
  private seq = 0;

  // ---- directory mutations -------------------------------------------------------------

  addUser(login: string, opts: { id?: string; status?: OktaStatus; profile?: Record<string, unknown> } = {}): FakeUser {
    const id = opts.id ?? `00u${this.nextId()}`;
    const [first = 'First', last = 'Last'] = login.split('@')[0]!.split('.');
    const user: FakeUser = {
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

  addGroup(name: string, opts: { id?: string; description?: string | null; type?: FakeGroup['type'] } = {}): FakeGroup {
    const id = opts.id ?? `00g${this.nextId()}`;
    const group: FakeGroup = {
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

  addApp(id: string): FakeApp {
    const app: FakeApp = { users: new Set(), groups: new Set() };
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

  userJson(u: FakeUser): Record<string, unknown> {
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

  groupJson(g: FakeGroup): Record<string, unknown> {
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

  private appUserJson(appId: string, u: FakeUser, scope: 'USER' | 'GROUP'): Record<string, unknown> {
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
      _embedded: { user: this.userJson(u) },
    };
  }

  private appGroupJson(appId: string, g: FakeGroup): Record<string, unknown> {
    return {
      id: g.id,
      lastUpdated: g.lastUpdated,
      priority: 0,
      profile: {},
      _links: {
        app: { href: `${this.url}/api/v1/apps/${appId}` },
        group: { href: `${this.url}/api/v1/groups/${g.id}` },
      },
      _embedded: { group: this.groupJson(g) },
    };
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.responseDelayMs > 0) {
      setTimeout(() => this.answer(req, res), this.responseDelayMs);
      return;
    }
    this.answer(req, res);
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const n = this.requests.length;
    const injected = this.fault?.({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, n });
    if (injected && serveFault(req, res, injected)) return;
    if (req.headers.authorization !== `SSWS ${this.token}`) {
      return this.error(res, 401, 'E0000011', 'Invalid token provided');
    }
    const parts = url.pathname.split('/').filter(Boolean); // api v1 ...
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
        const list = [...members].map((id) => this.users.get(id)).filter((u): u is FakeUser => !!u);
        return this.page(res, url, list.sort(byId).map((u) => this.userJson(u)), 1_000);
      }
      if (parts[2] === 'apps' && parts.length === 5) {
        const appId = parts[3]!;
        if (!this.apps.has(appId)) return this.error(res, 404, 'E0000007', `Not found: Resource not found: ${appId} (AppInstance)`);
        if (parts[4] === 'users') {
          const scopes = this.appUserScopes(appId);
          const list = [...scopes.keys()].sort().map((id) => this.appUserJson(appId, this.users.get(id)!, scopes.get(id)!));
          return this.page(res, url, list, 50, 500);
        }
        if (parts[4] === 'groups') {
          const app = this.apps.get(appId)!;
          const list = [...app.groups].sort().map((id) => this.appGroupJson(appId, this.groups.get(id)!));
          return this.page(res, url, list, 20, 200);
        }
      }
      return this.error(res, 404, 'E0000022', 'The endpoint does not support the provided HTTP method');
    } catch (error) {
      return this.error(res, 500, 'E0000009', `Internal Server Error: ${(error as Error).message}`);
    }
  }

  /** One page of `list`, with Okta's Link headers: `self` always, `next` unless it is the last page. */
  private page(res: ServerResponse, url: URL, all: Record<string, unknown>[], defaultLimit: number, maxLimit = defaultLimit): void {
    const list = this.rewriteList?.(url.pathname, all) ?? all;
    const limit = Math.min(Number(url.searchParams.get('limit') ?? defaultLimit) || defaultLimit, maxLimit, this.maxPageSize ?? Infinity);
    const after = url.searchParams.get('after');
    const start = after ? Number(Buffer.from(after, 'base64url').toString()) : 0;
    const items = list.slice(start, start + limit);
    const links = [`<${this.url}${url.pathname}${url.search}>; rel="self"`];
    if (start + limit < list.length) {
      const next = new URL(url.toString());
      next.searchParams.set('after', Buffer.from(String(start + limit)).toString('base64url'));
      next.searchParams.set('limit', String(limit));
      links.push(`<${this.url}${next.pathname}${next.search}>; rel="next"`);
    }
    res.writeHead(200, { 'content-type': 'application/json', link: links, ...this.rateHeaders() });
    res.end(JSON.stringify(items));
  }

  private error(res: ServerResponse, status: number, code: string, summary: string): void {
    res.writeHead(status, { 'content-type': 'application/json', ...this.rateHeaders() });
    res.end(JSON.stringify({ errorCode: code, errorSummary: summary, errorLink: code, errorId: `oae${this.nextId()}`, errorCauses: [] }));
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
    if (value === undefined) throw new Error(`fake Okta has no ${String(key)}`);
    return value;
  }
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
