/**
 * Okta's per-minute rate limits as the bench's fake Okta applies them: one bucket per endpoint
 * family, each answering X-Rate-Limit-Limit / -Remaining / -Reset (epoch seconds) on every
 * response and 429 E0000047 once spent, until its minute resets.
 *
 * Limits (IDP-FACTS.md "Okta System Log", One App / Enterprise column): `/api/v1/apps*` 100,
 * `/api/v1/logs` 50, `GET /api/v1/users` 600. IDP-FACTS gives no figure for `/api/v1/groups*`:
 * 500 is assumed here (configurable), and it is not a bucket the budget question is about.
 * Real Okta splits `/api/v1/users*` into more buckets (one user, a user's groups, ...); dirsync's
 * executor paces by the first three path segments (okta.executor.ts bucketOf), so the fake
 * keeps the same families and answers the same headers for each.
 */
export type BucketName = 'apps' | 'logs' | 'users' | 'groups' | 'other';

/** Requests per minute per bucket. */
export const OKTA_ONE_APP_LIMITS: Readonly<Record<BucketName, number>> = { apps: 100, logs: 50, users: 600, groups: 500, other: 600 };

/** The bucket a request path counts against, by endpoint family. */
export function bucketOfPath(path: string): BucketName {
  if (path.startsWith('/api/v1/apps')) return 'apps';
  if (path.startsWith('/api/v1/logs')) return 'logs';
  if (path.startsWith('/api/v1/users')) return 'users';
  if (path.startsWith('/api/v1/groups')) return 'groups';
  return 'other';
}

interface Window {
  used: number;
  resetAtMs: number;
}

/** What one request got from its bucket: the headers to send, and whether it is refused. */
export interface Admission {
  readonly refused: boolean;
  readonly headers: Record<string, string>;
}

/**
 * Fixed one-minute windows per bucket, starting at a window's first request (Okta's reset is per
 * bucket, reported as epoch seconds). `limits` null: unlimited, with generous headers, as the
 * fake answered before it knew of limits. Counts every request and every refusal per bucket.
 */
export class RateLimits {
  private readonly windows = new Map<BucketName, Window>();
  readonly used: Record<BucketName, number> = { apps: 0, logs: 0, users: 0, groups: 0, other: 0 };
  readonly refused: Record<BucketName, number> = { apps: 0, logs: 0, users: 0, groups: 0, other: 0 };

  constructor(public limits: Readonly<Record<BucketName, number>> | null) {}

  admit(path: string, nowMs = Date.now()): Admission {
    const bucket = bucketOfPath(path);
    this.used[bucket] += 1;
    if (!this.limits) {
      return { refused: false, headers: { 'x-rate-limit-limit': '100000', 'x-rate-limit-remaining': '99999', 'x-rate-limit-reset': String(Math.floor(nowMs / 1000) + 60) } };
    }
    const limit = this.limits[bucket];
    let window = this.windows.get(bucket);
    if (!window || window.resetAtMs <= nowMs) this.windows.set(bucket, (window = { used: 0, resetAtMs: nowMs + 60_000 }));
    const refused = window.used >= limit;
    if (refused) this.refused[bucket] += 1;
    else window.used += 1;
    return {
      refused,
      headers: {
        'x-rate-limit-limit': String(limit),
        'x-rate-limit-remaining': String(Math.max(0, limit - window.used)),
        'x-rate-limit-reset': String(Math.ceil(window.resetAtMs / 1000)),
      },
    };
  }

  reset(): void {
    this.windows.clear();
    for (const b of Object.keys(this.used) as BucketName[]) {
      this.used[b] = 0;
      this.refused[b] = 0;
    }
  }
}
