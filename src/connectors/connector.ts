import type { Snapshot } from '../core/model.js';

/** Counters a connector keeps while it reads, recorded on the run. */
export interface ReadStats {
  requests: number;
  /** Records read so far (users, groups, members, assignments): progress while a run reads. */
  records: number;
  retries: number;
  rateLimited: number;
  /** Milliseconds spent waiting to stay within the IdP's rate-limit share. */
  pacedMs: number;
  /** Provider-specific counters (authentik: policy bindings that cannot be evaluated). */
  [extra: string]: number;
}

export function emptyReadStats(): ReadStats {
  return { requests: 0, records: 0, retries: 0, rateLimited: 0, pacedMs: 0 };
}

/**
 * One IdP behind one integration. `readSnapshot` returns only a complete snapshot of the
 * integration's scope; if any page cannot be read after retries it throws IdpReadError,
 * so that a partial read can never be mistaken for users having left.
 */
/** What the tenant already holds, so a connector can skip re-reading what did not change. */
export interface ReadHints {
  /** group external id -> membership version the tenant's members were read at */
  readonly membersVersions: ReadonlyMap<string, string>;
}

export interface Connector {
  readSnapshot(signal?: AbortSignal, hints?: ReadHints): Promise<Snapshot>;
  /**
   * The groups each of these users belongs to (user external id -> group external ids): how a
   * run learns the memberships of users entering the scope in groups it did not re-read.
   * Connectors that never skip groups need not offer it.
   */
  readGroupsOf?(userIds: readonly string[], signal?: AbortSignal): Promise<Map<string, string[]>>;
  readonly stats: ReadStats;
}

/** Reading the IdP failed for good. The run fails with this message and deprovisions nobody. */
export class IdpReadError extends Error {
  override name = 'IdpReadError';
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RetryOptions {
  /** Retries after the first attempt of each page. */
  readonly retries: number;
  readonly minTimeoutMs: number;
  readonly maxTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryOptions = Object.freeze({ retries: 4, minTimeoutMs: 1_000, maxTimeoutMs: 30_000 });
