import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback-server.js';
import { type FaultInjector, serveFault } from './faults.js';

/**
 * A fake authentik on 127.0.0.1 speaking the /api/v3 wire format (shapes from authentik's
 * published OpenAPI schema, which @goauthentik/api ships as schema.yml): paginated lists with
 * `pagination.next` = 0 on the last page, snake_case fields, `roles_obj` always present,
 * Bearer-token auth, DRF error bodies. Tests mutate it between syncs and inject faults.
 */

export type UserType = 'internal' | 'external' | 'service_account' | 'internal_service_account';

export interface AkUser {
  pk: number;
  username: string;
  name: string;
  email: string;
  is_active: boolean | string;
  type: UserType;
  attributes: Record<string, unknown>;
  groups: string[];
  last_updated: string;
}

export interface AkGroup {
  pk: string;
  num_pk: number;
  name: string;
  parents: string[];
  attributes: Record<string, unknown>;
}

export interface AkBinding {
  pk: string;
  user: number | null;
  group: string | null;
  policy: string | null;
  target: string;
  negate: boolean;
  enabled: boolean;
  order: number;
}

export interface AkApp {
  pk: string;
  slug: string;
  name: string;
  policy_engine_mode: 'any' | 'all';
}

const T0 = '2024-01-01T00:00:00.000000Z';

export function akUserJson(u: AkUser, base = 'https://ak.test') {
  return {
    pk: u.pk,
    username: u.username,
    name: u.name,
    is_active: u.is_active,
    last_login: null,
    date_joined: T0,
    is_superuser: false,
    groups: u.groups,
    groups_obj: null,
    roles: [],
    roles_obj: null,
    email: u.email,
    avatar: `${base}/static/dist/assets/images/user_default.png`,
    attributes: u.attributes,
    uid: `${u.pk.toString(16).padStart(8, '0')}deadbeef`,
    path: 'users',
    type: u.type,
    uuid: `00000000-0000-4000-8000-${u.pk.toString().padStart(12, '0')}`,
    password_change_date: T0,
    last_updated: u.last_updated,
  };
}

export function akGroupJson(g: AkGroup) {
  return {
    pk: g.pk,
    num_pk: g.num_pk,
    name: g.name,
    is_superuser: false,
    parents: g.parents,
    parents_obj: null,
    users: [],
    users_obj: null,
    attributes: g.attributes,
    roles: [],
    roles_obj: [],
    inherited_roles_obj: null,
    children: [],
    children_obj: null,
  };
}

export function akBindingJson(b: AkBinding) {
  return {
    pk: b.pk,
    policy: b.policy,
    group: b.group,
    user: b.user,
    policy_obj: null,
    group_obj: null,
    user_obj: null,
    target: b.target,
    negate: b.negate,
    enabled: b.enabled,
    order: b.order,
    timeout: 30,
    failure_result: false,
    expires: null,
    expiring: false,
  };
}

export function akAppJson(a: AkApp) {
  return {
    pk: a.pk,
    pbm_uuid: a.pk,
    name: a.name,
    slug: a.slug,
    provider: null,
    provider_obj: null,
    backchannel_providers: [],
    backchannel_providers_obj: [],
    launch_url: null,
    open_in_new_tab: false,
    meta_launch_url: '',
    meta_icon: '',
    meta_icon_url: null,
    meta_icon_themed_urls: null,
    meta_description: '',
    meta_publisher: '',
    policy_engine_mode: a.policy_engine_mode,
    group: '',
    meta_hide: false,
  };
}

/**
 * authentik's default page size: REST_FRAMEWORK["PAGE_SIZE"] in authentik/root/settings.py. Its
 * Pagination class (authentik/api/pagination.py) sets no max_page_size, so any positive `page_size`
 * is served as asked.
 */
export const AK_DEFAULT_PAGE_SIZE = 100;

/**
 * The page number and size DRF's PageNumberPagination serves for a request, or undefined where it
 * answers 404 {"detail": "Invalid page."} (rest_framework/pagination.py, paginate_queryset: Django's
 * Paginator.page raises InvalidPage for a page that is not an integer, is below 1, or is past the last
 * page, except page 1 of an empty list; DRF turns that into NotFound(invalid_page_message)). "last" is
 * the last page (last_page_strings). get_page_size takes `page_size` only as a strictly positive
 * integer and falls back to the default page size otherwise.
 */
export function akPageOf(query: URLSearchParams, count: number, maxPageSize = Infinity): { page: number; pageSize: number } | undefined {
  const rawSize = query.get('page_size');
  const asked = rawSize !== null && /^\s*\+?\d+\s*$/.test(rawSize) ? Number(rawSize) : 0;
  const pageSize = Math.min(asked > 0 ? asked : AK_DEFAULT_PAGE_SIZE, maxPageSize);
  const totalPages = Math.max(1, Math.ceil(count / pageSize));
  const rawPage = query.get('page') ?? '1';
  const page = rawPage === 'last' ? totalPages : /^\s*[-+]?\d+\s*$/.test(rawPage) ? Number(rawPage) : NaN;
  if (!Number.isInteger(page) || page < 1 || page > totalPages) return undefined;
  return { page, pageSize };
}

/** authentik's paginated envelope for one page of `all`. */
export function akPage<T>(all: T[], page: number, pageSize: number) {
  const totalPages = Math.max(1, Math.ceil(all.length / pageSize));
  const start = (page - 1) * pageSize;
  const results = all.slice(start, start + pageSize);
  return {
    pagination: {
      next: page < totalPages ? page + 1 : 0,
      previous: page > 1 ? page - 1 : 0,
      count: all.length,
      current: page,
      total_pages: totalPages,
      start_index: results.length ? start + 1 : 0,
      end_index: start + results.length,
    },
    results,
    autocomplete: {},
  };
}

export class FakeAuthentik extends LoopbackServer {
  readonly users = new Map<number, AkUser>();
  readonly groups = new Map<string, AkGroup>();
  readonly apps = new Map<string, AkApp>();
  readonly bindings: AkBinding[] = [];
  token = 'fake-authentik-token';
  readonly requests: string[] = [];
  fault: FaultInjector | undefined;
  maxPageSize: number | undefined;
  /** Rewrites a listing's items (in wire format, before paging): malformed or duplicated records. */
  rewriteList: ((path: string, items: Record<string, unknown>[]) => Record<string, unknown>[]) | undefined;
  private seq = 0;

  addUser(username: string, opts: Partial<Omit<AkUser, 'username'>> = {}): AkUser {
    const pk = opts.pk ?? ++this.seq + 100;
    const [first = 'First', last = 'Last'] = username.split('@')[0]!.split('.');
    const user: AkUser = {
      pk,
      username,
      name: `${cap(first)} ${cap(last)}`,
      email: username.includes('@') ? username : `${username}@example.test`,
      is_active: true,
      type: 'internal',
      attributes: {},
      groups: [],
      last_updated: this.now(),
      ...opts,
    };
    this.users.set(pk, user);
    return user;
  }

  updateUser(pk: number, change: Partial<AkUser>): void {
    Object.assign(this.must(this.users, pk), change, { last_updated: this.now() });
  }

  addGroup(name: string, opts: { pk?: string; parents?: string[]; attributes?: Record<string, unknown> } = {}): AkGroup {
    const group: AkGroup = {
      pk: opts.pk ?? randomUUID(),
      num_pk: ++this.seq + 1000,
      name,
      parents: opts.parents ?? [],
      attributes: opts.attributes ?? {},
    };
    this.groups.set(group.pk, group);
    return group;
  }

  addMember(groupPk: string, userPk: number): void {
    const user = this.must(this.users, userPk);
    if (!user.groups.includes(groupPk)) user.groups.push(groupPk);
  }

  removeMember(groupPk: string, userPk: number): void {
    const user = this.must(this.users, userPk);
    user.groups = user.groups.filter((g) => g !== groupPk);
  }

  addApp(slug: string, mode: 'any' | 'all' = 'any'): AkApp {
    const app: AkApp = { pk: randomUUID(), slug, name: slug, policy_engine_mode: mode };
    this.apps.set(slug, app);
    return app;
  }

  bind(slug: string, to: { user?: number; group?: string; policy?: string; negate?: boolean; enabled?: boolean }): AkBinding {
    const binding: AkBinding = {
      pk: randomUUID(),
      user: to.user ?? null,
      group: to.group ?? null,
      policy: to.policy ?? null,
      target: this.must(this.apps, slug).pk,
      negate: to.negate ?? false,
      enabled: to.enabled ?? true,
      order: this.bindings.length,
    };
    this.bindings.push(binding);
    return binding;
  }

  unbind(binding: AkBinding): void {
    this.bindings.splice(this.bindings.indexOf(binding), 1);
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const injected = this.fault?.({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, n: this.requests.length });
    if (injected && serveFault(req, res, injected)) return;
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return this.json(res, 403, { detail: 'Token invalid/expired' });
    }
    const q = url.searchParams;
    const path = url.pathname;
    const paged = (list: unknown[]) => {
      const at = akPageOf(q, list.length, this.maxPageSize);
      if (!at) return this.json(res, 404, { detail: 'Invalid page.' });
      return this.json(res, 200, akPage(list, at.page, at.pageSize));
    };
    if (path === '/api/v3/core/users/') {
      const list = [...this.users.values()].sort((a, b) => a.pk - b.pk).map((u) => akUserJson(u, this.url));
      return paged(this.rewriteList?.(path, list) ?? list);
    }
    if (path === '/api/v3/core/groups/') {
      const list = [...this.groups.values()].sort((a, b) => a.name.localeCompare(b.name)).map(akGroupJson);
      return paged(this.rewriteList?.(path, list) ?? list);
    }
    const app = path.match(/^\/api\/v3\/core\/applications\/([^/]+)\/$/);
    if (app) {
      const found = this.apps.get(decodeURIComponent(app[1]!));
      return found ? this.json(res, 200, akAppJson(found)) : this.json(res, 404, { detail: 'No Application matches the given query.' });
    }
    if (path === '/api/v3/policies/bindings/') {
      // authentik/policies/api/bindings.py: the viewset's queryset is PolicyBinding.objects.all(),
      // ordered by ("target", "order"), and `target` is a plain django-filter field of PolicyBindingFilter.
      // So a listing without `target` is every binding of every application, flow, source... (a
      // connector that forgets the filter reads other applications' bindings as this one's), and a
      // `target` naming no bindable object fails the filterset's validation: DjangoFilterBackend raises
      // it as a 400 with the field's ModelChoiceField error.
      const target = q.get('target');
      if (target !== null && ![...this.apps.values()].some((a) => a.pk === target)) {
        return this.json(res, 400, { target: ['Select a valid choice. That choice is not one of the available choices.'] });
      }
      const list = this.bindings
        .filter((b) => target === null || b.target === target)
        .sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : a.order - b.order))
        .map(akBindingJson);
      return paged(list);
    }
    return this.json(res, 404, { detail: 'Not found.' });
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', vary: 'Accept' });
    res.end(JSON.stringify(body));
  }

  private now(): string {
    return new Date(Date.parse('2024-01-01T00:00:00Z') + ++this.seq * 1000).toISOString();
  }

  private must<K, V>(map: Map<K, V>, key: K): V {
    const value = map.get(key);
    if (value === undefined) throw new Error(`fake authentik has no ${String(key)}`);
    return value;
  }
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
