import { Configuration, CoreApi, PoliciesApi, ResponseError } from '@goauthentik/api';
import type { Snapshot } from '../../core/model.js';
import type { Egress } from '../../egress.js';
import { SnapshotBuilder } from '../../core/snapshot.js';
import { type CheckStep, NO_RETRY, runChecks } from '../check.js';
import { type Connector, DEFAULT_RETRY, type EndpointCheck, IdpReadError, type ReadStats, type RetryOptions, emptyReadStats } from '../connector.js';
import { type RetryPolicy, statusOf, withRetry } from '../retry.js';
import { type AuthentikGroupLike, type AuthentikUserLike, SERVICE_ACCOUNT_TYPES, toDirectoryGroup, toDirectoryUser } from './authentik.mapping.js';
import { authentikProblem } from './authentik.problems.js';
import { type Binding, appScope, effectiveMembers } from './authentik.scope.js';

export interface AuthentikConnectorOptions {
  /** authentik's address, such as https://auth.example.com (the API lives under /api/v3). */
  readonly baseUrl: string;
  readonly token: string;
  /** Where requests may connect: egressFor(config), or a test's own. */
  readonly egress: Egress;
  /** Scope to the users and groups bound to this application (its slug); without it, everyone. */
  readonly appSlug?: string | null;
  readonly retry?: RetryOptions;
  readonly requestTimeoutMs?: number;
}

const PAGE_SIZE = 500;

interface Page<T> {
  pagination: { next: number; count?: number };
  results: T[];
}

/**
 * Reads an authentik directory through @goauthentik/api: users (without service accounts),
 * groups, and, for an application, its policy bindings. Memberships come from each user's
 * `groups`, so they cost no extra requests. Every page is retried on 429 (honouring
 * Retry-After), 5xx, timeouts and bad bodies; a page that still fails fails the read.
 */
export class AuthentikConnector implements Connector {
  readonly stats: ReadStats = emptyReadStats();
  private readonly core: CoreApi;
  private readonly policies: PoliciesApi;
  private readonly retry: RetryOptions;
  private readonly details = new WeakMap<Response, string>();

  constructor(private readonly options: AuthentikConnectorOptions) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    const timeoutMs = options.requestTimeoutMs ?? 30_000;
    const config = new Configuration({
      basePath: `${options.baseUrl.replace(/\/+$/, '')}/api/v3`,
      accessToken: options.token,
      fetchApi: (url: string | URL | Request, init?: RequestInit) => {
        this.stats.requests += 1;
        // fetch looked up at each call, not captured: tests replace it (nock).
        return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), dispatcher: options.egress.dispatcher } as RequestInit);
      },
      middleware: [
        {
          post: async ({ response }) => {
            if (response.status === 429) this.stats.rateLimited += 1;
            // authentik says why in `detail` ("Token invalid/expired" is a 403 too); the SDK's
            // ResponseError keeps the response but not its body.
            if (response.status >= 400) {
              const body = (await response.clone().json().catch(() => undefined)) as { detail?: unknown } | undefined;
              if (typeof body?.detail === 'string') this.details.set(response, body.detail);
            }
            return response;
          },
        },
      ],
    });
    this.core = new CoreApi(config);
    this.policies = new PoliciesApi(config);
  }

  async readSnapshot(signal?: AbortSignal): Promise<Snapshot> {
    const slug = this.options.appSlug;
    let bindings: Binding[] | undefined;
    let mode: 'any' | 'all' = 'any';
    if (slug) {
      const app = await this.request(`GET /api/v3/core/applications/${slug}/`, signal, () => this.core.coreApplicationsRetrieve({ slug }));
      mode = app.policyEngineMode === 'all' ? 'all' : 'any';
      bindings = [];
      for await (const b of this.pages('GET /api/v3/policies/bindings/', signal, (page) =>
        this.policies.policiesBindingsList({ target: app.pk, page, pageSize: PAGE_SIZE }),
      )) {
        bindings.push({
          enabled: b.enabled !== false,
          negate: b.negate === true,
          user: b.user === null || b.user === undefined ? null : String(b.user),
          group: b.group ?? null,
          policy: b.policy ?? null,
        });
      }
    }

    const users: AuthentikUserLike[] = [];
    for await (const u of this.pages('GET /api/v3/core/users/', signal, (page) =>
      this.core.coreUsersList({ page, pageSize: PAGE_SIZE, includeGroups: false, includeRoles: false }),
    )) {
      if (typeof u.type === 'string' && SERVICE_ACCOUNT_TYPES.has(u.type)) continue;
      users.push(u);
    }
    const groups: AuthentikGroupLike[] = [];
    for await (const g of this.pages('GET /api/v3/core/groups/', signal, (page) =>
      this.core.coreGroupsList({ page, pageSize: PAGE_SIZE, includeUsers: false }),
    )) {
      groups.push(g);
    }

    const userGroups = new Map(users.map((u) => [String(u.pk), stringList(u.groups)]));
    const groupParents = new Map(groups.map((g) => [String(g.pk), stringList(g.parents)]));
    const scope = bindings
      ? appScope({ mode, bindings, userGroups, groupParents })
      : { users: 'all' as const, groups: 'all' as const, ignoredPolicyBindings: 0 };
    this.stats.ignoredPolicyBindings = scope.ignoredPolicyBindings;

    const snapshot = new SnapshotBuilder();
    for (const u of users) {
      if (scope.users === 'all' || scope.users.has(String(u.pk))) snapshot.addUserFrom(u, toDirectoryUser);
    }
    for (const g of groups) {
      if (scope.groups === 'all' || scope.groups.has(String(g.pk))) snapshot.addGroupFrom(g, toDirectoryGroup);
    }
    for (const [groupId, members] of effectiveMembers(userGroups, groupParents)) {
      for (const userId of members) snapshot.addMember(groupId, userId);
    }
    if (scope.groups !== 'all') {
      // authentik answers 200 with an empty list when the token may not view groups: a bound
      // group missing from the listing means the read cannot be trusted to delete anything.
      const listed = new Set(groups.map((g) => String(g.pk)));
      const missing = [...scope.groups].filter((g) => !listed.has(g)).sort();
      if (missing.length > 0) {
        snapshot.suspect(
          `application ${slug}'s policy bindings name ${missing.length} group(s) that the groups listing lacks (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}); check that the token's user may view groups`,
        );
      }
    }
    return snapshot.build();
  }

  /** Every item of a paged listing; authentik's `pagination.next` is the next page number, 0 after the last. */
  private async *pages<T>(endpoint: string, signal: AbortSignal | undefined, fetchPage: (page: number) => Promise<Page<T>>): AsyncGenerator<T> {
    let page = 1;
    const seen = new Set<number>();
    // Pages are numbered, not cursors: an item deleted or added mid-read shifts the rest, and
    // one item would slip between two pages unread, then be deprovisioned. A count that moves
    // (or does not match what was read) fails the read instead.
    let total: number | undefined;
    let read = 0;
    const shifted = (now: number) =>
      new IdpReadError(`authentik ${endpoint} changed while it was being read (${total} items when the read began, ${now} by page ${page}); the next run reads it again`);
    for (;;) {
      const current = page;
      const result = await this.request(`${endpoint}?page=${current}`, signal, () => fetchPage(current));
      if (!result || !Array.isArray(result.results) || typeof result.pagination?.next !== 'number') {
        throw new IdpReadError(`authentik ${endpoint} page ${current} is not a paginated list`);
      }
      const count = result.pagination.count;
      if (typeof count === 'number') {
        total ??= count;
        if (count !== total) throw shifted(count);
      }
      read += result.results.length;
      this.stats.records += result.results.length;
      yield* result.results;
      seen.add(current);
      const next = result.pagination.next;
      if (!next) {
        if (total !== undefined && read !== total) throw shifted(read);
        return;
      }
      if (seen.has(next)) throw new IdpReadError(`authentik ${endpoint} paginates in a loop (page ${current} points back to page ${next})`);
      page = next;
    }
  }

  async check(signal?: AbortSignal): Promise<EndpointCheck[]> {
    const slug = this.options.appSlug;
    const steps: CheckStep[] = [];
    let appPk: string | undefined;
    if (slug) {
      steps.push({
        endpoint: `/api/v3/core/applications/${slug}/`,
        gate: true,
        run: async () => {
          appPk = (await this.core.coreApplicationsRetrieve({ slug })).pk;
        },
      });
      steps.push({
        endpoint: '/api/v3/policies/bindings/',
        run: async () => {
          await this.policies.policiesBindingsList({ target: appPk!, page: 1, pageSize: 1 });
        },
      });
    }
    steps.push({
      endpoint: '/api/v3/core/users/',
      run: async () => {
        const page = await this.core.coreUsersList({ page: 1, pageSize: 1, includeGroups: false, includeRoles: false });
        // authentik filters listings by the token user's object permissions rather than refusing.
        if (page.pagination.count === 0) return "no users visible: if there are users, the token's user lacks the permission to view them";
        return undefined;
      },
    });
    steps.push({
      endpoint: '/api/v3/core/groups/',
      run: async () => {
        await this.core.coreGroupsList({ page: 1, pageSize: 1, includeUsers: false });
      },
    });
    return runChecks(steps, (step) => withRetry(step.run, { ...this.policy(`GET ${step.endpoint}`, signal), retry: NO_RETRY }));
  }

  private request<T>(describeRequest: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    return withRetry(fn, this.policy(describeRequest, signal));
  }

  private policy(describeRequest: string, signal: AbortSignal | undefined): RetryPolicy {
    const problem = (error: unknown) =>
      authentikProblem(error, { baseUrl: this.options.baseUrl, endpoint: describeRequest, appSlug: this.options.appSlug, detail: this.detailOf(error) });
    return {
      retry: this.retry,
      stats: this.stats,
      signal,
      describeRequest: `authentik ${describeRequest}`,
      permanent: (error) => {
        const status = statusOf(error);
        if (status === undefined || status === 429 || status >= 500) return undefined;
        const found = problem(error);
        return new IdpReadError(`authentik ${describeRequest} failed: HTTP ${status}; ${found?.message ?? 'authentik refused the request'}`, status, { cause: error, problem: found });
      },
      describeError: (error) => {
        const status = statusOf(error);
        return status !== undefined ? `HTTP ${status}` : ((error as Error)?.message ?? String(error));
      },
      retryAfterMs: (error) => {
        if (!(error instanceof ResponseError)) return undefined;
        const header = error.response.headers.get('retry-after');
        if (!header) return undefined;
        const seconds = Number(header);
        return Number.isFinite(seconds) ? seconds * 1000 : Math.max(0, Date.parse(header) - Date.now());
      },
      problem,
    };
  }

  private detailOf(error: unknown): string | undefined {
    return error instanceof ResponseError ? this.details.get(error.response) : undefined;
  }
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}
