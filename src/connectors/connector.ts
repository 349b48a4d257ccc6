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

/**
 * Users and groups a targeted run reads (SPEC "Run": `targeted`): named by an event, a push, a
 * change feed, or an operator (`dirsync sync <id> --user LOGIN`).
 */
export interface SubjectNames {
  /** IdP user ids (Okta user id; authentik user pk, as a string). */
  readonly userIds: readonly string[];
  /** Logins as an operator types them: the IdP resolves each to its user. */
  readonly logins: readonly string[];
  /** IdP group ids (Okta group id; authentik group pk, a uuid). */
  readonly groupIds: readonly string[];
  /**
   * Of `userIds`, those whose named changes cannot move them into or out of the integration's
   * scope (a profile update, a suspension or its end, joining a group: Okta keeps app
   * assignments through all of them). The targeted read narrows this to users the tenant holds
   * an active account for, whom a connector may then read without asking whether they are in
   * scope (Okta: `/api/v1/users`, sparing the app's far smaller rate-limit bucket); the run
   * checks again when it applies that the account is still active (src/runs/read-stamps.ts).
   */
  readonly inPlace?: readonly string[];
  /**
   * Of `userIds`, those whose named changes are of the `inPlace` kind and leaving groups: in
   * scope still if, read afterwards, they are members of a group that brings its members into
   * scope and that the tenant holds (Okta: a group assigned to the app). The targeted read asks
   * the connector to read them in place, then checks their groups, and asks again through the
   * app for those it cannot place (src/runs/targeted-read.ts).
   */
  readonly leftGroups?: readonly string[];
}

export const NO_SUBJECTS: SubjectNames = Object.freeze({ userIds: [], logins: [], groupIds: [] });

/**
 * What the IdP says now of named users and groups (a targeted read). Nothing here is a full
 * listing: a user or group absent from `snapshot` was read and found out of scope or gone.
 */
export interface SubjectRead {
  /**
   * Built with SnapshotBuilder (records that cannot be taken are in `skipped`):
   * - `users`: the named users that are in scope, and every member of a named group in scope
   *   (members of a group in scope are in scope);
   * - `groups`: the named groups that are in scope;
   * - `memberships`: each named group in scope with all its members.
   */
  readonly snapshot: Snapshot;
  /** Every named user read (logins resolved to ids), in scope or not. */
  readonly userIds: readonly string[];
  /** Named logins that no IdP user has. */
  readonly unknownLogins: readonly string[];
  /** Named users in scope -> the ids of every IdP group they belong to (in scope or not). */
  readonly groupsOf: ReadonlyMap<string, readonly string[]>;
  /** Every named group read, in scope or not. */
  readonly groupIds: readonly string[];
  /**
   * Named users taken as in scope without asking the IdP (of `names.inPlace`, those read
   * present and still holding access): the run applies to them only while their accounts stay
   * active (read-stamps.ts `ReadInterval.assumedInScope`).
   */
  readonly assumedInScope?: readonly string[];
}

/** Changes read from an IdP's change feed since a cursor (an incremental run). */
export type ChangeFeedRead =
  | {
      readonly kind: 'changes';
      /** The users and groups the changes name: a targeted read of these follows. */
      readonly names: SubjectNames;
      /** Changes that cannot be narrowed to subjects (an app-level change), one sentence each: the run reads the whole scope. */
      readonly unnarrowable: readonly string[];
      /** Events read (after dropping duplicates). */
      readonly events: number;
      /** Where the next read starts: store it once this run's changes are applied. */
      readonly cursor: string;
    }
  /** The feed cannot be read (scope missing, cursor too old, ...): the run reads the whole scope instead, saying why. */
  | { readonly kind: 'unavailable'; readonly reason: string };

/** A connector that can read named subjects alone, and (optionally) a change feed. */
export interface TargetedSource {
  /** Reads the named users and groups. Throws IdpReadError when a request fails after retries. */
  readSubjects(names: SubjectNames, signal?: AbortSignal): Promise<SubjectRead>;
  /** A cursor from which the feed yields every change made at or after `at` (taken when a full read starts). */
  feedCursorAt?(at: Date): string;
  /** Changes since `cursor`. Never throws for a feed it cannot read: answers `unavailable`. */
  readChanges?(cursor: string, signal?: AbortSignal): Promise<ChangeFeedRead>;
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
