import { type KeyObject, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type FaultInjector, serveFault } from './faults.js';
import { LoopbackServer } from './loopback-server.js';
import { type Jws, checkClientAssertion, checkDpopProof } from './okta-oauth.js';

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

/** An OAuth 2.0 service app registered in the org (API Services app, public key / private key). */
export interface FakeServiceApp {
  clientId: string;
  publicKey: KeyObject;
  /** The kid Okta knows the public key by; assertions must name it when set. */
  keyId?: string;
  /** Okta API scopes granted to the app (its "Okta API Scopes" tab). */
  grantedScopes: Set<string>;
  /** "Require DPoP header in token requests". */
  dpop: boolean;
}

export interface FakeTokenRequest {
  scopes: string[];
  assertion: Jws | { error: string; description: string };
  dpop: boolean;
}

// The scope each management API family needs (Okta's "Scopes and supported endpoints").
const SCOPE_OF: Record<string, string> = { users: 'okta.users.read', groups: 'okta.groups.read', apps: 'okta.apps.read' };

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
  serviceApp: FakeServiceApp | undefined;
  /** Every request to the token endpoint, decoded. */
  readonly tokenRequests: FakeTokenRequest[] = [];
  private readonly accessTokens = new Map<string, { scopes: Set<string>; thumbprint: string | undefined }>();
  private readonly dpopNonce = randomBytes(8).toString('hex');
  /** Cursors this org issued in `next` links: which listing each continues and where. */
  private readonly cursors = new Map<string, { listing: string; start: number }>();
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

  // Okta embeds the user (`_embedded.user`) in an app user, and the group (`_embedded.group`) in an
  // app group assignment, only when `expand=user` / `expand=group` is asked for; otherwise there is no
  // `_embedded` at all. Source: the `expand` parameter of listApplicationUsers ("return the corresponding
  // User object in the _embedded property. Valid value: user") and listApplicationGroupAssignments in
  // Okta's management OpenAPI spec, as @okta/okta-sdk-nodejs 8.1 carries it
  // (src/generated/apis/ApplicationApi.js).
  private appUserJson(appId: string, u: FakeUser, scope: 'USER' | 'GROUP', expand: boolean): Record<string, unknown> {
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

  private appGroupJson(appId: string, g: FakeGroup, expand: boolean): Record<string, unknown> {
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
    if (req.method === 'POST' && url.pathname === '/oauth2/v1/token') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.issueToken(req, res, new URLSearchParams(Buffer.concat(chunks).toString())));
      return;
    }
    const parts = url.pathname.split('/').filter(Boolean); // api v1 ...
    const refusal = this.authorize(req, res, url, parts[2]);
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
        const list = [...members].map((id) => this.users.get(id)).filter((u): u is FakeUser => !!u);
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

  /** What Okta checks before serving a management API call: an SSWS token, or an access token with the scope. */
  private authorize(req: IncomingMessage, res: ServerResponse, url: URL, family: string | undefined): (() => void) | undefined {
    const header = req.headers.authorization ?? '';
    if (header === `SSWS ${this.token}`) return undefined;
    const [scheme, value = ''] = header.split(' ');
    const granted = (scheme === 'Bearer' || scheme === 'DPoP') && this.accessTokens.get(value);
    if (!granted) return () => this.error(res, 401, 'E0000011', 'Invalid token provided');
    if (granted.thumbprint !== undefined) {
      if (scheme !== 'DPoP') return () => this.error(res, 401, 'E0000011', 'Invalid token provided');
      const proof = checkDpopProof(req.headers.dpop as string | undefined, { method: req.method ?? 'GET', url: `${this.url}${url.pathname}${url.search}`, accessToken: value });
      if ('error' in proof || proof.thumbprint !== granted.thumbprint) {
        const description = 'error' in proof ? proof.error : 'The DPoP proof was not signed with the key the token is bound to.';
        return () => this.error(res, 400, 'E0000011', description, { 'www-authenticate': `DPoP error="invalid_dpop_proof", error_description="${description}"` });
      }
    }
    const needed = SCOPE_OF[family ?? ''];
    if (needed && !granted.scopes.has(needed)) {
      return () =>
        this.error(res, 403, 'E0000006', 'You do not have permission to perform the requested action', {
          'www-authenticate': `Bearer authorization_uri="${this.url}/oauth2/v1/authorize", realm="${this.url}", scope="${needed}", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="${url.pathname}"`,
        });
    }
    return undefined;
  }

  /** POST /oauth2/v1/token: client credentials with a private-key JWT, as the org authorization server does it. */
  private issueToken(req: IncomingMessage, res: ServerResponse, form: URLSearchParams): void {
    const oauthError = (status: number, error: string, description: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers, ...this.rateHeaders() });
      res.end(JSON.stringify({ error, error_description: description }));
    };
    const app = this.serviceApp;
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const assertion =
      app && form.get('client_assertion')
        ? checkClientAssertion(form.get('client_assertion')!, { publicKey: app.publicKey, clientId: app.clientId, tokenUrl: `${this.url}/oauth2/v1/token`, keyId: app.keyId })
        : { error: 'invalid_client', description: 'Client authentication failed. Either the client or the client credentials are invalid.' };
    this.tokenRequests.push({ scopes, assertion, dpop: req.headers.dpop !== undefined });
    if (form.get('grant_type') !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', `The authorization grant type is not supported.`);
    if ('error' in assertion || !app) return oauthError(401, 'invalid_client', 'error' in assertion ? assertion.description : 'no such client');
    if (scopes.length === 0) return oauthError(400, 'invalid_scope', "The authorization server resource does not have any configured default scopes, 'scope' must be provided.");
    const refused = scopes.filter((scope) => !app.grantedScopes.has(scope));
    if (refused.length > 0) return oauthError(400, 'invalid_scope', `The following scopes are not allowed: ${refused.join(', ')}`);
    let thumbprint: string | undefined;
    if (app.dpop) {
      const proof = checkDpopProof(req.headers.dpop as string | undefined, { method: 'POST', url: `${this.url}/oauth2/v1/token` });
      if ('error' in proof) return oauthError(400, 'invalid_dpop_proof', proof.error);
      if (proof.nonce !== this.dpopNonce) {
        return oauthError(400, 'use_dpop_nonce', 'Authorization server requires nonce in DPoP proof.', { 'dpop-nonce': this.dpopNonce });
      }
      thumbprint = proof.thumbprint;
    }
    const accessToken = `eyJfake.${randomBytes(16).toString('base64url')}`;
    this.accessTokens.set(accessToken, { scopes: new Set(scopes), thumbprint });
    res.writeHead(200, { 'content-type': 'application/json', ...this.rateHeaders() });
    res.end(JSON.stringify({ token_type: app.dpop ? 'DPoP' : 'Bearer', expires_in: 3600, access_token: accessToken, scope: scopes.join(' ') }));
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
  private page(res: ServerResponse, url: URL, all: Record<string, unknown>[], defaultLimit: number, maxLimit = defaultLimit): void {
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
      const next = new URL(url.toString());
      next.searchParams.set('after', cursor);
      next.searchParams.set('limit', String(limit));
      links.push(`<${this.url}${next.pathname}${next.search}>; rel="next"`);
    }
    res.writeHead(200, { 'content-type': 'application/json', link: links, ...this.rateHeaders() });
    res.end(JSON.stringify(items));
  }

  private error(
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
    if (value === undefined) throw new Error(`fake Okta has no ${String(key)}`);
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
