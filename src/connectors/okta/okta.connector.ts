import okta from '@okta/okta-sdk-nodejs';
import type { Snapshot } from '../../core/model.js';
import { SnapshotBuilder, type SnapshotSink } from '../../core/snapshot.js';
import { type CheckStep, NO_RETRY, runChecks } from '../check.js';
import {
  type ChangeFeedRead,
  type Connector,
  DEFAULT_RETRY,
  type EndpointCheck,
  IdpReadError,
  type ReadHints,
  type ReadStats,
  type RetryOptions,
  type SubjectNames,
  type SubjectRead,
  type TargetedSource,
  emptyReadStats,
} from '../connector.js';
import { type RetryPolicy, forEachConcurrently, statusOf, withRetry } from '../retry.js';
import type { Egress } from '../../egress.js';
import { type Credentials, redactCredentials } from '../../integrations/credentials.js';
import { OktaRequestExecutor } from './okta.executor.js';
import { LOGS_SCOPE, OktaTokenError, adaptTokenRequests, oktaScopes, requestAccessToken, sdkAuthConfig } from './okta.oauth.js';
import { type OktaContext, oktaProblem } from './okta.problems.js';
import { type OktaAppGroupLike, type OktaAppUserLike, appGroupToDirectoryGroup, appUserToDirectoryUser, toDirectoryGroup, toDirectoryUser } from './okta.mapping.js';
import { jsonPages } from './okta.json-pages.js';
import { readOktaSubjects } from './okta.subjects.js';
import { type FeedOptions, oktaFeedCursorAt, readOktaChanges } from './okta.system-log.js';

export interface OktaConnectorOptions {
  readonly orgUrl: string;
  readonly credentials: Credentials;
  /** Where requests may connect: egressFor(config), or a test's own. */
  readonly egress: Egress;
  /** Scope to the users and groups assigned to this Okta app; without it, the whole org. */
  readonly appId?: string | null;
  readonly retry?: RetryOptions;
  readonly rateLimitShare?: number;
  readonly requestTimeoutMs?: number;
  /** Group member listings read at once. */
  readonly concurrency?: number;
  /** 429s the SDK retries itself after X-Rate-Limit-Reset (default 3). */
  readonly max429Retries?: number;
  /** How much of the System Log one incremental read takes (tests use small pages). */
  readonly feed?: FeedOptions;
}

type Client = InstanceType<typeof okta.Client>;

// The largest page sizes Okta allows, to spend the fewest requests of the org's rate limit.
const PAGE = { users: 200, appUsers: 500, groups: 10_000, appGroups: 200, groupUsers: 1_000 } as const;

// What the SDK's Collection offers; its own typings describe it loosely.
interface Pager<T> {
  next(): Promise<{ done?: boolean; value: T | null }>;
  nextUri: string | undefined;
  currentItems: unknown[];
}

/**
 * Reads an Okta org (or one Okta app's assignments) through @okta/okta-sdk-nodejs: the whole
 * scope (readSnapshot), named users and groups alone (readSubjects, okta.subjects.ts), and the
 * System Log's changes since a cursor (readChanges, okta.system-log.ts).
 * Every page is retried with p-retry on 429/5xx/timeouts/malformed bodies; a page that
 * still fails aborts the whole read with IdpReadError.
 */
export class OktaConnector implements Connector, TargetedSource {
  readonly stats: ReadStats = emptyReadStats();
  private readonly client: Client;
  /** The client reading the System Log: a service app's has a token of its own (LOGS_SCOPE). */
  private logsClient: Client | undefined;
  private readonly retry: RetryOptions;
  /** Access tokens issued to a service app during this read: secrets an echoing IdP or proxy could put in an error. */
  private readonly accessTokens: string[] = [];

  constructor(private readonly options: OktaConnectorOptions) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.client = this.newClient(oktaScopes(options.appId));
  }

  /** A client whose service-app tokens ask for `scopes` (an API token ignores them), counting into this.stats. */
  private newClient(scopes: readonly string[]): Client {
    const { options } = this;
    const executor = new OktaRequestExecutor({
      rateLimitShare: options.rateLimitShare ?? 0.5,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      max429Retries: options.max429Retries ?? 3,
      stats: this.stats,
      egress: options.egress,
    });
    const client = new okta.Client({
      orgUrl: this.orgUrl(),
      ...sdkAuthConfig(options.credentials, options.appId, scopes),
      // The SDK caches single-resource GETs forever by default; a reconciler must not.
      cacheMiddleware: null,
      requestExecutor: executor,
    } as ConstructorParameters<typeof okta.Client>[0]);
    adaptTokenRequests(client, executor, (token) => this.accessTokens.push(token));
    return client;
  }

  private orgUrl(): string {
    return this.options.orgUrl.replace(/\/+$/, '');
  }

  /** Reads the named users and groups alone (a targeted run): see readOktaSubjects. */
  readSubjects(names: SubjectNames, signal?: AbortSignal): Promise<SubjectRead> {
    return readOktaSubjects(
      {
        client: this.client,
        orgUrl: this.orgUrl(),
        appId: this.options.appId,
        concurrency: this.options.concurrency ?? 4,
        get: (endpoint, request, s) => this.getOne(endpoint, request, s),
        readAll: (endpoint, open, s, onItem) => this.readAll(endpoint, open, s, onItem),
      },
      names,
      signal,
    );
  }

  /** The System Log from `at` on (taken when a full read starts). */
  feedCursorAt(at: Date): string {
    return oktaFeedCursorAt(at);
  }

  /** The System Log's changes since `cursor` (an incremental run): see readOktaChanges. */
  readChanges(cursor: string, signal?: AbortSignal, retry: RetryOptions = this.retry): Promise<ChangeFeedRead> {
    // Only an incremental run asks for okta.logs.read, in a token of its own: full reads of a
    // service app without that scope go on working.
    this.logsClient ??= this.options.credentials.kind === 'token' ? this.client : this.newClient([LOGS_SCOPE]);
    const requests = {
      orgUrl: this.orgUrl(),
      client: this.logsClient,
      auth: this.options.credentials.kind,
      policy: (endpoint: string, s: AbortSignal | undefined) => ({ ...this.policy(endpoint, s, 'GET', [LOGS_SCOPE]), retry }),
    };
    // Okta may quote the request's credentials back in an error summary: never into a run's warnings.
    return readOktaChanges(requests, cursor, this.options.appId ?? null, signal, this.options.feed).then((feed) =>
      feed.kind === 'unavailable' ? { ...feed, reason: this.redacted(feed.reason) } : feed,
    );
  }

  /**
   * One resource, or undefined when Okta says it does not exist (404 E0000007): an answer, not a
   * failure. A 404 naming the integration's app (AppInstance) is a failure: the app is gone, not
   * every user, and a 404 without Okta's error code is not Okta's API.
   */
  private async getOne<T>(endpoint: string, request: () => Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
    const found = await withRetry(async () => {
      try {
        return { value: await request() };
      } catch (error) {
        const e = error as { errorCode?: unknown; errorSummary?: unknown };
        const appGone = typeof e.errorSummary === 'string' && e.errorSummary.includes('(AppInstance)');
        if (statusOf(error) === 404 && e.errorCode === 'E0000007' && !appGone) return { value: undefined };
        throw error;
      }
    }, this.policy(endpoint, signal));
    if (found.value !== undefined) this.stats.records += 1;
    return found.value;
  }

  async readSnapshot(signal?: AbortSignal, hints?: ReadHints): Promise<Snapshot> {
    const snapshot = new SnapshotBuilder();
    await this.readInto(snapshot, signal, hints);
    return snapshot.build();
  }

  /**
   * Reads the whole scope into `snapshot`, page by page (readSnapshot's read, into any sink: a
   * staged read writes it to Postgres as it comes). Throws IdpReadError when a page cannot be
   * read after retries; what the sink holds then is not a read.
   */
  async readInto(snapshot: SnapshotSink, signal?: AbortSignal, hints?: ReadHints): Promise<void> {
    const appId = this.options.appId;
    // A sink that writes in the background is waited for between pages (SnapshotSink.ready).
    const ready = snapshot.ready && (() => snapshot.ready!());
    const c = this.client;
    if (appId) {
      const path = `/api/v1/apps/${appId}`;
      await this.readAll(`${path}/users`, () => jsonPages(c.applicationApi.listApplicationUsers({ appId, expand: 'user', limit: PAGE.appUsers })), signal, (appUser: OktaAppUserLike) =>
        snapshot.addUserFrom(appUser, appUserToDirectoryUser), ready,
      );
      await this.readAll(`${path}/groups`, () => jsonPages(c.applicationApi.listApplicationGroupAssignments({ appId, expand: 'group', limit: PAGE.appGroups })), signal, (assignment: OktaAppGroupLike) =>
        snapshot.addGroupFrom(assignment, appGroupToDirectoryGroup), ready,
      );
    } else {
      const addUser = (user: unknown) => snapshot.addUserFrom(user as object, toDirectoryUser);
      await this.readAll('/api/v1/users', () => jsonPages(c.userApi.listUsers({ limit: PAGE.users })), signal, addUser, ready);
      // The plain listing omits DEPROVISIONED users; a status filter returns them.
      await this.readAll('/api/v1/users?filter=status eq "DEPROVISIONED"', () => jsonPages(c.userApi.listUsers({ filter: 'status eq "DEPROVISIONED"', limit: PAGE.users })), signal, addUser, ready);
      await this.readAll('/api/v1/groups', () => jsonPages(c.groupApi.listGroups({ limit: PAGE.groups })), signal, (group: unknown) =>
        snapshot.addGroupFrom(group as object, toDirectoryGroup), ready,
      );
    }

    // A group whose lastMembershipUpdated is the version the tenant's members were read at has
    // the same members: they are not read again (most of a no-op run's requests otherwise).
    const groupIds = snapshot.groupIds().filter((groupId) => {
      const known = hints?.membersVersions.get(groupId);
      if (!known || known !== snapshot.group(groupId)?.membersVersion) return true;
      snapshot.markMembersUnread(groupId);
      return false;
    });
    await forEachConcurrently(groupIds, this.options.concurrency ?? 4, (groupId) =>
      this.readAll(`/api/v1/groups/${groupId}/users`, () => jsonPages(c.groupApi.listGroupUsers({ groupId, limit: PAGE.groupUsers })), signal, (user: { id?: string }) => {
        if (typeof user.id === 'string') snapshot.addMember(groupId, user.id);
      }, ready),
    );
  }

  async readGroupsOf(userIds: readonly string[], signal?: AbortSignal): Promise<Map<string, string[]>> {
    const groups = new Map<string, string[]>();
    await forEachConcurrently(userIds, this.options.concurrency ?? 4, async (userId) => {
      const list: string[] = [];
      await this.readAll(`/api/v1/users/${userId}/groups`, () => this.client.userApi.listUserGroups({ userId }), signal, (g: { id?: string }) => {
        if (typeof g.id === 'string') list.push(g.id);
      });
      groups.set(userId, list);
    });
    return groups;
  }

  async check(signal?: AbortSignal): Promise<EndpointCheck[]> {
    const c = this.client;
    const appId = this.options.appId;
    const steps: CheckStep[] = [];
    if (this.options.credentials.kind === 'okta-private-key') {
      steps.push({
        endpoint: '/oauth2/v1/token',
        method: 'POST',
        gate: true,
        run: async () => {
          await requestAccessToken(c);
        },
      });
    }
    // The ids of a group and a user found on the way, to try the per-group and per-user listings.
    let groupId: string | undefined;
    let userId: string | undefined;
    // One page of a listing (its first request), and the id of its first item.
    const firstId = async (open: () => Promise<unknown>): Promise<string | undefined> => {
      const { value } = await ((await open()) as Pager<{ id?: unknown }>).next();
      return typeof value?.id === 'string' ? value.id : undefined;
    };
    const listing = (endpoint: string, open: () => Promise<unknown>, found: (id: string | undefined) => void = () => {}): CheckStep => ({
      endpoint,
      run: async () => found(await firstId(open)),
    });
    const foundUser = (id: string | undefined) => void (userId ??= id);
    const foundGroup = (id: string | undefined) => void (groupId ??= id);
    if (appId) {
      // App users' and app group assignments' ids are the users' and groups' ids.
      steps.push(
        listing(`/api/v1/apps/${appId}/users`, () => c.applicationApi.listApplicationUsers({ appId, expand: 'user', limit: 1 }), foundUser),
        listing(`/api/v1/apps/${appId}/groups`, () => c.applicationApi.listApplicationGroupAssignments({ appId, expand: 'group', limit: 1 }), foundGroup),
      );
    } else {
      steps.push(
        listing('/api/v1/users', () => c.userApi.listUsers({ limit: 1 }), foundUser),
        listing('/api/v1/users?filter=status eq "DEPROVISIONED"', () => c.userApi.listUsers({ filter: 'status eq "DEPROVISIONED"', limit: 1 })),
        listing('/api/v1/groups', () => c.groupApi.listGroups({ limit: 1 }), foundGroup),
      );
    }
    steps.push({
      endpoint: '/api/v1/groups/{groupId}/users',
      run: async () => {
        if (!groupId) return 'no group in scope to try it with';
        await firstId(() => c.groupApi.listGroupUsers({ groupId: groupId!, limit: 1 }));
      },
    });
    steps.push({
      endpoint: '/api/v1/users/{userId}/groups',
      run: async () => {
        if (!userId) return 'no user in scope to try it with';
        await firstId(() => c.userApi.listUserGroups({ userId: userId! }));
      },
    });
    // What targeted runs read of one user (okta.subjects.ts).
    if (appId) {
      steps.push({
        endpoint: `/api/v1/apps/${appId}/users/{userId}`,
        run: async () => {
          if (!userId) return 'no user in scope to try it with';
          await c.applicationApi.getApplicationUser({ appId, userId: userId!, expand: 'user' });
        },
      });
    }
    steps.push({
      endpoint: '/api/v1/users/{userId}',
      run: async () => {
        if (!userId) return 'no user in scope to try it with';
        await c.userApi.getUser({ userId: userId! });
      },
    });
    // Optional: without the System Log, scheduled runs read the whole scope (said in a note, not a failure).
    steps.push({
      endpoint: '/api/v1/logs',
      run: async () => {
        const feed = await this.readChanges(oktaFeedCursorAt(new Date()), signal, NO_RETRY);
        if (feed.kind === 'unavailable') return `cannot be read, so every scheduled run reads the whole scope instead of the changes: ${feed.reason}`;
      },
    });
    return runChecks(steps, (step) => withRetry(step.run, { ...this.policy(step.endpoint, signal, step.method), retry: NO_RETRY }));
  }

  /** `scopes`: what the service app's token for this endpoint asks for (to name a refused one). */
  private policy(endpoint: string, signal: AbortSignal | undefined, method = 'GET', scopes?: readonly string[]): RetryPolicy {
    return {
      retry: this.retry,
      stats: this.stats,
      signal,
      describeRequest: `Okta ${method} ${endpoint}`,
      permanent: (error) => this.permanentError(error, endpoint, scopes),
      describeError: (error) => this.errorText(error),
      problem: (error) => oktaProblem(error, this.context(endpoint, scopes)),
    };
  }

  /** 429, 5xx, network failures and unparseable bodies are worth retrying; other 4xx are not. */
  private permanentError(error: unknown, endpoint: string, scopes?: readonly string[]): IdpReadError | undefined {
    const status = statusOf(error);
    if (status === undefined || status === 429 || status >= 500) return undefined;
    const problem = oktaProblem(error, this.context(endpoint, scopes));
    const request = error instanceof OktaTokenError ? 'Okta POST /oauth2/v1/token' : `Okta GET ${endpoint}`;
    return new IdpReadError(`${request} failed: ${this.errorText(error)}; ${problem?.message ?? 'Okta refused the request'}`, status, { cause: error, problem });
  }

  /** How a failure reads in a run's error, without any access token it may echo. */
  private errorText(error: unknown): string {
    return this.redacted(describe(error));
  }

  /** `text` without the integration's credentials or any access token issued for them in it. */
  private redacted(text: string): string {
    const withoutTokens = this.accessTokens.reduce((t, token) => t.split(token).join('[redacted]'), text);
    return redactCredentials(withoutTokens, this.options.credentials);
  }

  private context(endpoint: string, scopes: readonly string[] = oktaScopes(this.options.appId)): OktaContext {
    const { orgUrl, credentials, appId } = this.options;
    return { orgUrl, endpoint: endpoint.split('?')[0]!, auth: credentials.kind, appId, scopes };
  }

  /** Pages through one listing. A failed page is fetched again: the SDK keeps its cursor until a page succeeds. */
  private async readAll<T>(
    endpoint: string,
    open: () => Promise<unknown>,
    signal: AbortSignal | undefined,
    onItem: (item: T) => void,
    /** Awaited before each page is fetched (a sink's `ready`). */
    beforePage?: () => Promise<void>,
  ): Promise<void> {
    const policy = this.policy(endpoint, signal);
    const pager = (await withRetry(open, policy)) as Pager<T>;
    const nextWithCursorKept = async () => {
      // The SDK's Collection moves its cursor to the next page *before* parsing the body, so
      // a page that fails to parse would be skipped silently on retry: a partial snapshot
      // that looks complete. Put the cursor back so the retry reads the same page again.
      const cursor = pager.nextUri;
      try {
        return await pager.next();
      } catch (error) {
        pager.nextUri = cursor;
        pager.currentItems = [];
        throw error;
      }
    };
    for (;;) {
      if (pager.currentItems.length === 0) await beforePage?.();
      // Items of a page already fetched come from memory: only a page fetch can fail and needs the retry wrapper.
      const { done, value } = pager.currentItems.length > 0 ? await pager.next() : await withRetry(nextWithCursorKept, policy);
      if (value !== null && value !== undefined) {
        this.stats.records += 1;
        onItem(value);
      }
      // No item but not done: an empty page with a next link; the listing goes on.
      if (done) return;
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof OktaTokenError) return `HTTP ${error.status}${error.body?.error ? ` ${error.body.error}` : ''}`;
  const status = statusOf(error);
  const e = error as { errorCode?: string; errorSummary?: string; message?: string };
  if (status !== undefined) return `HTTP ${status}${e.errorCode ? ` ${e.errorCode}` : ''}${e.errorSummary ? ` (${e.errorSummary})` : ''}`;
  return e?.message ?? String(error);
}
