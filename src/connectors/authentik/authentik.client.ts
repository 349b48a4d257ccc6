import { Configuration, CoreApi, EventsApi, PoliciesApi, ResponseError } from '@goauthentik/api';
import type { Egress } from '../../egress.js';
import { IdpReadError, type ReadStats, type RetryOptions } from '../connector.js';
import { type RetryPolicy, statusOf, withRetry } from '../retry.js';
import { authentikProblem } from './authentik.problems.js';
import type { Binding } from './authentik.scope.js';

export interface AuthentikClientOptions {
  /** authentik's address, such as https://auth.example.com (the API lives under /api/v3). */
  readonly baseUrl: string;
  readonly token: string;
  readonly egress: Egress;
  readonly appSlug?: string | null | undefined;
  readonly retry: RetryOptions;
  readonly requestTimeoutMs: number;
}

/** The largest page the reads ask for: authentik's pagination sets no maximum page size. */
export const PAGE_SIZE = 500;

export interface Page<T> {
  pagination: { next: number; count?: number };
  results: T[];
}

/** A single record that authentik answered 404 for, with its own error body: it does not exist. */
export const GONE = Symbol('gone');

/** What an application's policy bindings say, as the scope computation takes them. */
export interface ApplicationAccess {
  /** The application's pk: the policy-binding target, and `context.model.pk` of its model events. */
  readonly pk: string;
  readonly name: string;
  readonly mode: 'any' | 'all';
  readonly bindings: readonly Binding[];
}

/**
 * The HTTP side of the authentik connector: the @goauthentik/api clients over one fetch that
 * counts requests in `stats` and keeps authentik's error `detail`, and one retry policy (429 honouring Retry-After, 5xx, timeouts, bad bodies) with the
 * errors worded by authentikProblem. Shared by the full, targeted and change-feed reads.
 */
export class AuthentikClient {
  readonly core: CoreApi;
  readonly policies: PoliciesApi;
  readonly events: EventsApi;
  private readonly details = new WeakMap<Response, string>();

  constructor(
    private readonly options: AuthentikClientOptions,
    readonly stats: ReadStats,
  ) {
    const config = new Configuration({
      basePath: `${options.baseUrl.replace(/\/+$/, '')}/api/v3`,
      accessToken: options.token,
      fetchApi: (url: string | URL | Request, init?: RequestInit) => {
        this.stats.requests += 1;
        // fetch looked up at each call, not captured: tests replace it (nock).
        return fetch(url, { ...init, signal: AbortSignal.timeout(options.requestTimeoutMs), dispatcher: options.egress.dispatcher } as RequestInit);
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
    this.events = new EventsApi(config);
  }

  /** One request with the retry policy; throws IdpReadError when it fails for good. */
  request<T>(describeRequest: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    return withRetry(fn, this.policy(describeRequest, signal));
  }

  /**
   * One record, or GONE when authentik answers 404 with its own error body ({"detail": "Not
   * found."}): the record does not exist, which is an answer. A 404 without that body comes
   * from another server (a wrong base URL) and fails like any other error.
   */
  retrieve<T>(describeRequest: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T | typeof GONE> {
    return this.request(describeRequest, signal, async () => {
      try {
        return await fn();
      } catch (error) {
        if (statusOf(error) === 404 && this.detailOf(error) !== undefined) return GONE;
        throw error;
      }
    });
  }

  /** Every item of a paged listing; authentik's `pagination.next` is the next page number, 0 after the last. */
  async *pages<T>(endpoint: string, signal: AbortSignal | undefined, fetchPage: (page: number) => Promise<Page<T>>): AsyncGenerator<T> {
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

  /** The application (by slug) and its policy bindings: what decides who is in scope. */
  async applicationAccess(slug: string, signal: AbortSignal | undefined): Promise<ApplicationAccess> {
    const app = await this.request(`GET /api/v3/core/applications/${slug}/`, signal, () => this.core.coreApplicationsRetrieve({ slug }));
    const bindings: Binding[] = [];
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
    return { pk: app.pk, name: app.name, mode: app.policyEngineMode === 'all' ? 'all' : 'any', bindings };
  }

  policy(describeRequest: string, signal: AbortSignal | undefined): RetryPolicy {
    const problem = (error: unknown) =>
      authentikProblem(error, { baseUrl: this.options.baseUrl, endpoint: describeRequest, appSlug: this.options.appSlug, detail: this.detailOf(error) });
    return {
      retry: this.options.retry,
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

  /** authentik's `detail` from an error's body, when it sent one. */
  detailOf(error: unknown): string | undefined {
    return error instanceof ResponseError ? this.details.get(error.response) : undefined;
  }
}

export function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}
