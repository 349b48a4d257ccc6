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

/** What authentik puts in a model event's `context.model` (authentik/events/utils.py model_to_dict). */
export interface AkModelRef {
  app: string;
  model_name: string;
  /** An int for users; a UUID's 32-digit hex, without dashes, for groups, applications and bindings (sanitize_dict: `value.hex`). */
  pk: number | string;
  name: string;
}

export interface AkEvent {
  pk: string;
  action: 'model_created' | 'model_updated' | 'model_deleted' | 'login' | 'logout';
  model: AkModelRef | null;
  /** ISO 8601 with microseconds, as authentik's DateTimeField serializes it. */
  created: string;
}

/** An event as GET /api/v3/events/events/ shows it (EventSerializer). */
export function akEventJson(e: AkEvent) {
  return {
    pk: e.pk,
    user: { pk: 1, email: 'admin@acme.test', username: 'akadmin' },
    action: e.action,
    app: 'authentik.events.middleware',
    context: e.model
      ? { model: e.model, http_request: { args: {}, path: '/api/v3/core/users/', method: 'PATCH', request_id: e.pk.replace(/-/g, ''), user_agent: 'Mozilla/5.0' } }
      : { http_request: { args: {}, path: '/if/flow/default-authentication-flow/', method: 'GET', user_agent: 'Mozilla/5.0' } },
    client_ip: '10.0.0.5',
    created: e.created,
    expires: '2099-01-01T00:00:00.000000Z',
    brand: { pk: '0b55ad9e5ba44d3fa9ec4e2c8a1e8f00', app: 'authentik_brands', name: 'Default brand', model_name: 'brand' },
  };
}

/** The event actions authentik knows (EventAction), as the `actions` filter's choices. */
const AK_EVENT_ACTIONS = new Set([
  'login', 'login_failed', 'logout', 'user_write', 'suspicious_request', 'password_set', 'secret_view', 'secret_rotate',
  'invitation_used', 'authorize_application', 'source_linked', 'impersonation_started', 'impersonation_ended',
  'flow_execution', 'policy_execution', 'policy_exception', 'property_mapping_exception', 'system_task_execution',
  'system_task_exception', 'system_exception', 'configuration_error', 'model_created', 'model_updated', 'model_deleted',
  'email_sent', 'update_available', 'custom_',
]);

/** Microseconds since the epoch of an ISO 8601 instant with up to 6 fractional digits, or NaN. */
export function akMicros(iso: string): number {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})$/.exec(iso.trim());
  if (!m) return NaN;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  return seconds * 1000 + Number((m[2] ?? '').padEnd(6, '0') || 0);
}

function akStamp(micros: number): string {
  return `${new Date(Math.floor(micros / 1000)).toISOString().slice(0, 23)}${String(micros % 1000).padStart(3, '0')}Z`;
}

const hex = (uuid: string) => uuid.replace(/-/g, '');

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
  /**
   * authentik's event log, oldest first: each mutation below appends the model events authentik's
   * AuditMiddleware records for the same change made through its API (authentik/events/middleware.py).
   */
  readonly events: AkEvent[] = [];
  token = 'fake-authentik-token';
  readonly requests: string[] = [];
  fault: FaultInjector | undefined;
  maxPageSize: number | undefined;
  /** Rewrites a listing's items (in wire format, before paging) or a retrieved record (as a list of one): malformed or duplicated records. */
  rewriteList: ((path: string, items: Record<string, unknown>[]) => Record<string, unknown>[]) | undefined;
  /**
   * How the events API treats the token's user: 'ok'; 'forbidden' answers 403 (a token without
   * API access to it); 'hidden' lists nothing, as authentik's object-permission filter does for a
   * user without permission to view events.
   */
  eventsAccess: 'ok' | 'forbidden' | 'hidden' = 'ok';
  /** Added to the real clock: this authentik's clock (timestamps, `Date` header) runs ahead (or behind) dirsync's. */
  clockOffsetMs = 0;
  private seq = 0;
  private lastStamp = 0;
  private recording = true;

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
    this.record('model_created', this.userRef(user));
    return user;
  }

  updateUser(pk: number, change: Partial<AkUser>): void {
    const user = this.must(this.users, pk);
    Object.assign(user, change, { last_updated: this.now() });
    this.record('model_updated', this.userRef(user));
  }

  /** Deletes a user; its policy bindings go with it (on_delete CASCADE), each with its own event. */
  deleteUser(pk: number): void {
    const user = this.must(this.users, pk);
    this.record('model_deleted', this.userRef(user));
    for (const b of this.bindings.filter((b) => b.user === pk)) this.unbind(b);
    this.users.delete(pk);
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
    this.record('model_created', this.groupRef(group));
    return group;
  }

  updateGroup(pk: string, change: Partial<Omit<AkGroup, 'pk' | 'num_pk'>>): void {
    const group = this.must(this.groups, pk);
    Object.assign(group, change);
    this.record('model_updated', this.groupRef(group));
  }

  /** Deletes a group: its memberships, its place among other groups' parents and its bindings go with it. */
  deleteGroup(pk: string): void {
    const group = this.must(this.groups, pk);
    this.record('model_deleted', this.groupRef(group));
    for (const b of this.bindings.filter((b) => b.group === pk)) this.unbind(b);
    for (const u of this.users.values()) u.groups = u.groups.filter((g) => g !== pk);
    for (const g of this.groups.values()) g.parents = g.parents.filter((p) => p !== pk);
    this.groups.delete(pk);
  }

  /** As POST /core/groups/{pk}/add_user/ does: group.users.add(user), a model_updated of the group (m2m_changed). */
  addMember(groupPk: string, userPk: number): void {
    const user = this.must(this.users, userPk);
    if (!user.groups.includes(groupPk)) user.groups.push(groupPk);
    this.recordGroupUpdate(groupPk);
  }

  removeMember(groupPk: string, userPk: number): void {
    const user = this.must(this.users, userPk);
    user.groups = user.groups.filter((g) => g !== groupPk);
    this.recordGroupUpdate(groupPk);
  }

  addApp(slug: string, mode: 'any' | 'all' = 'any'): AkApp {
    const app: AkApp = { pk: randomUUID(), slug, name: slug, policy_engine_mode: mode };
    this.apps.set(slug, app);
    this.record('model_created', { app: 'authentik_core', model_name: 'application', pk: hex(app.pk), name: app.name });
    return app;
  }

  updateApp(slug: string, change: Partial<Omit<AkApp, 'pk' | 'slug'>>): void {
    const app = this.must(this.apps, slug);
    Object.assign(app, change);
    this.record('model_updated', { app: 'authentik_core', model_name: 'application', pk: hex(app.pk), name: app.name });
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
    this.record('model_created', this.bindingRef(binding));
    return binding;
  }

  unbind(binding: AkBinding): void {
    this.record('model_deleted', this.bindingRef(binding));
    this.bindings.splice(this.bindings.indexOf(binding), 1);
  }

  /**
   * Runs `change` without recording events, as authentik does for changes made outside an HTTP
   * request (source syncs and blueprints in the worker, `ak shell`, the database directly).
   */
  withoutEvents(change: () => void): void {
    this.recording = false;
    try {
      change();
    } finally {
      this.recording = true;
    }
  }

  /** Appends any event (a login, ...) to the log. */
  recordEvent(action: AkEvent['action'], model: AkModelRef | null = null): AkEvent {
    const event: AkEvent = { pk: randomUUID(), action, model, created: this.now() };
    this.events.push(event);
    return event;
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
      // UserFilter (authentik/core/api/users.py): `username` exact; `groups_by_pk` a
      // ModelMultipleChoiceFilter (members of any of them; a pk naming no group fails validation,
      // 400); `last_updated__gt` a strict comparison at the database's microsecond precision.
      let users = [...this.users.values()];
      const username = q.get('username');
      if (username !== null) users = users.filter((u) => u.username === username);
      const byGroup = q.getAll('groups_by_pk');
      if (byGroup.length > 0) {
        const unknown = byGroup.find((g) => !this.groups.has(g));
        if (unknown !== undefined) return this.json(res, 400, { groups_by_pk: [`Select a valid choice. ${unknown} is not one of the available choices.`] });
        users = users.filter((u) => u.groups.some((g) => byGroup.includes(g)));
      }
      const updatedAfter = q.get('last_updated__gt');
      if (updatedAfter !== null) {
        const after = akMicros(updatedAfter);
        if (Number.isNaN(after)) return this.json(res, 400, { last_updated__gt: ['Enter a valid date/time.'] });
        users = users.filter((u) => akMicros(u.last_updated) > after);
      }
      const list = users.sort((a, b) => a.pk - b.pk).map((u) => akUserJson(u, this.url));
      return paged(this.rewriteList?.(path, list) ?? list);
    }
    const oneUser = path.match(/^\/api\/v3\/core\/users\/([^/]+)\/$/);
    if (oneUser) {
      const found = /^\d+$/.test(oneUser[1]!) ? this.users.get(Number(oneUser[1])) : undefined;
      if (!found) return this.json(res, 404, { detail: 'No User matches the given query.' });
      const record = [akUserJson(found, this.url)];
      return this.json(res, 200, (this.rewriteList?.(path, record) ?? record)[0]);
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
    if (path === '/api/v3/events/events/') {
      // EventsFilter (authentik/events/api/events.py): `actions` a MultipleChoiceFilter over
      // EventAction (an unknown choice fails validation, 400), `context_model_*` on the JSON
      // context; the viewset orders by "-created" unless `ordering` says otherwise, and has no
      // filter on `created`.
      if (this.eventsAccess === 'forbidden') return this.json(res, 403, { detail: 'You do not have permission to perform this action.' });
      let events = this.eventsAccess === 'hidden' ? [] : [...this.events];
      const actions = q.getAll('actions');
      const badAction = actions.find((a) => !AK_EVENT_ACTIONS.has(a));
      if (badAction !== undefined) return this.json(res, 400, { actions: [`Select a valid choice. ${badAction} is not one of the available choices.`] });
      if (actions.length > 0) events = events.filter((e) => actions.includes(e.action));
      const modelName = q.get('context_model_name');
      if (modelName !== null) events = events.filter((e) => e.model?.model_name === modelName);
      const modelApp = q.get('context_model_app');
      if (modelApp !== null) events = events.filter((e) => e.model?.app === modelApp);
      const ordering = q.get('ordering') ?? '-created';
      const sign = ordering === 'created' ? 1 : -1;
      events.sort((a, b) => sign * (akMicros(a.created) - akMicros(b.created)));
      return paged(events.map(akEventJson));
    }
    return this.json(res, 404, { detail: 'Not found.' });
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    // The Date header from this authentik's clock, so clockOffsetMs moves it too.
    res.writeHead(status, { 'content-type': 'application/json', vary: 'Accept', date: new Date(this.clock()).toUTCString() });
    res.end(JSON.stringify(body));
  }

  private clock(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** A timestamp of this authentik's clock with microseconds, strictly after the previous one. */
  private now(): string {
    this.lastStamp = Math.max(this.clock() * 1000, this.lastStamp + 1);
    return akStamp(this.lastStamp);
  }

  private record(action: AkEvent['action'], model: AkModelRef): void {
    if (this.recording) this.events.push({ pk: randomUUID(), action, model, created: this.now() });
  }

  /** Tests may edit memberships of a group they removed from `groups` by hand: no event then. */
  private recordGroupUpdate(groupPk: string): void {
    const group = this.groups.get(groupPk);
    if (group) this.record('model_updated', this.groupRef(group));
  }

  private userRef(u: AkUser): AkModelRef {
    return { app: 'authentik_core', model_name: 'user', pk: u.pk, name: u.username };
  }

  private groupRef(g: AkGroup): AkModelRef {
    return { app: 'authentik_core', model_name: 'group', pk: hex(g.pk), name: g.name };
  }

  /** authentik/policies/models.py PolicyBinding.__str__: the target shown by its own __str__ (an application's name). */
  private bindingRef(b: AkBinding): AkModelRef {
    const target = [...this.apps.values()].find((a) => a.pk === b.target)?.name ?? `PolicyBindingModel ${b.target}`;
    const to = b.policy ? `Policy ${b.policy}` : b.group ? `Group ${this.groups.get(b.group)?.name ?? b.group}` : b.user !== null ? `User ${this.users.get(b.user)?.name ?? b.user}` : 'Invalid invalid';
    return { app: 'authentik_policies', model_name: 'policybinding', pk: hex(b.pk), name: `Binding from ${target} #${b.order} to ${to}` };
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
