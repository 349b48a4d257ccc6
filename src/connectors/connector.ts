import type { LocalUser, Snapshot } from '../core/model.js';
import type { Problem, ProblemKind } from './problems.js';

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
  /**
   * The integration's accounts (external id -> account): a source that can tell which users
   * did not change since (scim: by fingerprint) takes those from here instead of re-reading.
   */
  readonly users?: ReadonlyMap<string, LocalUser>;
}

/** What a run needs of a connector: reading the IdP. */
export interface SnapshotSource {
  readSnapshot(signal?: AbortSignal, hints?: ReadHints): Promise<Snapshot>;
  /**
   * The groups each of these users belongs to (user external id -> group external ids): how a
   * run learns the memberships of users entering the scope in groups it did not re-read.
   * Connectors that never skip groups need not offer it.
   */
  readGroupsOf?(userIds: readonly string[], signal?: AbortSignal): Promise<Map<string, string[]>>;
  readonly stats: ReadStats;
}

export interface Connector extends SnapshotSource {
  /**
   * Reads one page from every endpoint a sync uses, each once without retries, and says per
   * endpoint whether it works: `integration test`.
   */
  check(signal?: AbortSignal): Promise<EndpointCheck[]>;
}

/** One endpoint's answer in `integration test`. */
export type EndpointCheck =
  | { readonly endpoint: string; readonly ok: true; readonly note?: string }
  | { readonly endpoint: string; readonly ok: false; readonly problem: ProblemKind | 'not-checked' | 'failed'; readonly message: string };

/** Reading the IdP failed for good. The run fails with this message and deprovisions nobody. */
export class IdpReadError extends Error {
  override name = 'IdpReadError';
  /** What it means for the admin, when the connector could tell. */
  readonly problem: Problem | undefined;
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown; problem?: Problem | undefined },
  ) {
    super(message, options);
    this.problem = options?.problem;
  }
}

export interface RetryOptions {
  /** Retries after the first attempt of each page. */
  readonly retries: number;
  readonly minTimeoutMs: number;
  readonly maxTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryOptions = Object.freeze({ retries: 4, minTimeoutMs: 1_000, maxTimeoutMs: 30_000 });
