import pRetry, { AbortError } from 'p-retry';
import { SnapshotError } from '../core/snapshot.js';
import { isEgressRefusal } from '../egress.js';
import { IdpReadError, type ReadStats, type RetryOptions } from './connector.js';
import type { Problem } from './problems.js';

export interface RetryPolicy {
  readonly retry: RetryOptions;
  readonly stats: ReadStats;
  readonly signal?: AbortSignal | undefined;
  /** e.g. "Okta GET /api/v1/users": names the request in errors. */
  readonly describeRequest: string;
  /**
   * Says whether a failure is worth retrying. Returns the error to throw at once (wrapped as
   * IdpReadError with a hint) when it is not, or undefined to retry.
   */
  readonly permanent: (error: unknown) => IdpReadError | undefined;
  /** How to word a failure in the final message (HTTP status, IdP error code). */
  readonly describeError: (error: unknown) => string;
  /** Extra wait the IdP asked for (Retry-After), in ms. */
  readonly retryAfterMs?: (error: unknown) => number | undefined;
  /** What a failure that outlasted its retries means for the admin. */
  readonly problem?: (error: unknown) => Problem | undefined;
}

/**
 * Runs one IdP request with p-retry: transient failures (429, 5xx, network, timeouts,
 * unparseable bodies) back off and retry; permanent ones and bad data stop at once. What
 * still fails becomes an IdpReadError naming the request, so the run fails with a reason.
 */
export async function withRetry<T>(fn: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  try {
    return await pRetry(
      async () => {
        try {
          return await fn();
        } catch (error) {
          if (error instanceof SnapshotError) throw new AbortError(error);
          // Refused before connecting, by this process's rules: asking again would change nothing.
          if (isEgressRefusal(error)) {
            const problem = policy.problem?.(error);
            throw new AbortError(new IdpReadError(`${policy.describeRequest} was not sent: ${problem?.message ?? (error as Error).message}`, undefined, { cause: error, problem }));
          }
          const permanent = policy.permanent(error);
          if (permanent) throw new AbortError(permanent);
          // p-retry never retries a TypeError (it takes one for a bug), but an SDK parsing a
          // body that is not what the API promises throws one ("data is not iterable"): that
          // is a bad answer from the IdP, worth asking again like any other.
          if (error instanceof TypeError) throw new Error(error.message, { cause: error });
          throw error;
        }
      },
      {
        retries: policy.retry.retries,
        minTimeout: policy.retry.minTimeoutMs,
        maxTimeout: policy.retry.maxTimeoutMs,
        signal: policy.signal,
        onFailedAttempt: async ({ error, retriesLeft }) => {
          if (retriesLeft <= 0) return;
          policy.stats.retries += 1;
          const wait = policy.retryAfterMs?.(error);
          if (wait && wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 120_000)));
        },
      },
    );
  } catch (error) {
    if (error instanceof IdpReadError || error instanceof SnapshotError) throw error;
    const problem = policy.problem?.(error);
    const attempts = policy.retry.retries + 1;
    throw new IdpReadError(
      `${policy.describeRequest} failed${attempts > 1 ? ` after ${attempts} attempts` : ''}: ${policy.describeError(error)}${problem ? `; ${problem.message}` : ''}`,
      statusOf(error),
      { cause: error, problem },
    );
  }
}

export function statusOf(error: unknown): number | undefined {
  const e = error as { status?: unknown; response?: { status?: unknown } } | null;
  const status = e?.status ?? e?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

/** Runs `fn` over `items`, `limit` at a time; the first failure stops the rest from starting. */
export async function forEachConcurrently<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failed) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  });
  await Promise.all(workers);
}
