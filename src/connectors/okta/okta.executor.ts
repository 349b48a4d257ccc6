import okta from '@okta/okta-sdk-nodejs';
import type { Egress } from '../../egress.js';
import type { ReadStats } from '../connector.js';

const { DefaultRequestExecutor } = okta;

interface Bucket {
  limit: number;
  remaining: number;
  resetAtMs: number;
}

export interface OktaExecutorOptions {
  /** Share of each rate-limit bucket this integration may use before it waits for the reset. */
  readonly rateLimitShare: number;
  /** Per-request timeout. */
  readonly requestTimeoutMs: number;
  /** Retries of a 429 that carries X-Rate-Limit-Reset, done by the SDK after waiting for the reset. */
  readonly max429Retries: number;
  readonly stats: ReadStats;
  /** Where requests may connect (src/egress.ts): every request, the token request included, goes through it. */
  readonly egress: Egress;
  readonly sleep?: (ms: number) => Promise<void>;
}

type SdkRequest = Parameters<InstanceType<typeof DefaultRequestExecutor>['fetch']>[0];
type SdkResponse = Awaited<ReturnType<InstanceType<typeof DefaultRequestExecutor>['fetch']>>;

/** An OAuth 2.0 error response (RFC 6749 section 5.2), as Okta's token endpoint sends it. */
export interface OAuthErrorBody {
  error?: string;
  error_description?: string;
}

/** A refused token request, as it came over the wire. */
export interface TokenFailure {
  readonly status: number;
  readonly body: OAuthErrorBody | undefined;
  /** DPoP-Nonce: the nonce Okta demands in the next proof. */
  readonly nonce: string | null;
}

/**
 * The Okta SDK's executor, plus what dirsync needs around every request: a per-request
 * timeout, request counters, and pacing from X-Rate-Limit-Remaining so a sync stays within
 * its share of each Okta bucket instead of running into 429s. 429s that do happen are
 * retried by the SDK after X-Rate-Limit-Reset.
 */
export class OktaRequestExecutor extends DefaultRequestExecutor {
  private readonly buckets = new Map<string, Bucket>();
  private tokenFailure: TokenFailure | undefined;

  constructor(private readonly options: OktaExecutorOptions) {
    super({ maxRetries: options.max429Retries, requestTimeout: 0 });
  }

  override async fetch(request: SdkRequest): Promise<SdkResponse> {
    await this.pace(request.url ?? '');
    // Setting startTime first keeps the base class from clearing our per-attempt timeout.
    request.startTime ??= new Date();
    // node-fetch 2 reads `timeout` from the request; the SDK's typings do not list it.
    (request as SdkRequest & { timeout?: number }).timeout = this.options.requestTimeoutMs;
    // node-fetch 2 takes an agent per URL (redirects included). It replaces the SDK's own
    // HTTPS_PROXY agent: through a proxy the IdP's address could not be checked.
    (request as SdkRequest & { agent?: unknown }).agent = (url: URL) => this.options.egress.agentFor(url);
    this.options.stats.requests += 1;
    // Per rate-limit bucket too: what a run spent of each (`requestsApps`, `requestsUsers`, ...).
    const perBucket = bucketStat(request.url ?? '');
    this.options.stats[perBucket] = (this.options.stats[perBucket] ?? 0) + 1;
    const response = await super.fetch(request);
    if (isTokenRequest(request.url ?? '')) {
      // The SDK does not report a refused token request faithfully (see adaptTokenRequests): keep it.
      this.tokenFailure =
        response.status >= 400
          ? {
              status: response.status,
              body: (await response
                .clone()
                .json()
                .catch(() => undefined)) as OAuthErrorBody | undefined,
              nonce: response.headers.get('dpop-nonce'),
            }
          : undefined;
    }
    return response;
  }

  /** The last refused token request, once. */
  takeTokenFailure(): TokenFailure | undefined {
    const failure = this.tokenFailure;
    this.tokenFailure = undefined;
    return failure;
  }

  override parseResponse(request: SdkRequest, response: SdkResponse) {
    this.observe(request.url ?? '', response);
    if (response.status === 429) this.options.stats.rateLimited += 1;
    return super.parseResponse(request, response);
  }

  override getRetryDelayMs(response: SdkResponse): number {
    // Okta's own formula (reset - Date + 1 s), but sane when Date is missing, and bounded.
    const reset = Number(response.headers.get('x-rate-limit-reset')) * 1000;
    const now = Date.parse(response.headers.get('date') ?? '') || Date.now();
    return Math.min(Math.max(reset - now + 1000, 1000), 120_000);
  }

  override retryRequest(request: SdkRequest, response: SdkResponse, delayMs: number) {
    this.options.stats.retries += 1;
    return super.retryRequest(request, response, Math.max(0, delayMs));
  }

  private observe(url: string, response: SdkResponse): void {
    const limit = Number(response.headers.get('x-rate-limit-limit'));
    const remaining = Number(response.headers.get('x-rate-limit-remaining'));
    const reset = Number(response.headers.get('x-rate-limit-reset'));
    if (!(limit > 0) || !Number.isFinite(remaining) || !(reset > 0)) return;
    // Okta's clock may differ from ours: measure the reset relative to its Date header.
    const serverNow = Date.parse(response.headers.get('date') ?? '') || Date.now();
    // The org's counter, whoever spent it (this run, another run of the integration, other
    // clients): the run's stats keep the fullest any bucket was seen, as a percentage.
    const used = Math.round(((limit - Math.max(0, remaining)) / limit) * 100);
    if (used > (this.options.stats.rateLimitPeakPercent ?? 0)) this.options.stats.rateLimitPeakPercent = used;
    this.buckets.set(bucketOf(url), { limit, remaining, resetAtMs: Date.now() + (reset * 1000 - serverNow) });
  }

  private async pace(url: string): Promise<void> {
    const bucket = this.buckets.get(bucketOf(url));
    if (!bucket) return;
    const floor = bucket.limit * (1 - this.options.rateLimitShare);
    const waitMs = bucket.resetAtMs - Date.now();
    if (bucket.remaining > floor || waitMs <= 0) {
      bucket.remaining -= 1;
      return;
    }
    this.options.stats.pacedMs += waitMs;
    await (this.options.sleep ?? sleep)(waitMs);
    this.buckets.delete(bucketOf(url));
  }
}

/** Okta rate-limits per endpoint family; /api/v1/users, /api/v1/groups and /api/v1/apps are separate buckets. */
export function bucketOf(url: string): string {
  const path = new URL(url).pathname.split('/').slice(0, 4).join('/');
  return path;
}

/**
 * The run-stats key counting requests to `url`'s Okta rate-limit bucket: `requestsApps`
 * (/api/v1/apps*), `requestsUsers`, `requestsGroups`, `requestsLogs`, or `requestsOther` (the
 * token endpoint and anything else). Okta's buckets: IDP-FACTS "Okta System Log".
 */
export function bucketStat(url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return 'requestsOther';
  }
  const family = /^\/api\/v1\/(apps|users|groups|logs)(\/|$)/.exec(path)?.[1];
  return family ? `requests${family[0]!.toUpperCase()}${family.slice(1)}` : 'requestsOther';
}

function isTokenRequest(url: string): boolean {
  return url.split('?')[0]!.endsWith('/oauth2/v1/token');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
