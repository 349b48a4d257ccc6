import type { Snapshot } from '../../core/model.js';
import type { Egress } from '../../egress.js';
import { SnapshotBuilder } from '../../core/snapshot.js';
import { type CheckStep, NO_RETRY, runChecks } from '../check.js';
import {
  type ChangeFeedRead,
  type Connector,
  DEFAULT_RETRY,
  type EndpointCheck,
  type ReadStats,
  type RetryOptions,
  type SubjectNames,
  type SubjectRead,
  type TargetedSource,
  emptyReadStats,
} from '../connector.js';
import { statusOf, withRetry } from '../retry.js';
import { AuthentikClient, PAGE_SIZE, stringList } from './authentik.client.js';
import { authentikFeedCursorAt, readAuthentikChanges } from './authentik.feed.js';
import { type AuthentikGroupLike, type AuthentikUserLike, SERVICE_ACCOUNT_TYPES, toDirectoryGroup, toDirectoryUser } from './authentik.mapping.js';
import { appScope, effectiveMembers } from './authentik.scope.js';
import { readAuthentikSubjects } from './authentik.subjects.js';

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

/**
 * Reads an authentik directory through @goauthentik/api: users (without service accounts),
 * groups, and, for an application, its policy bindings. Memberships come from each user's
 * `groups`, so they cost no extra requests. Every page is retried on 429 (honouring
 * Retry-After), 5xx, timeouts and bad bodies; a page that still fails fails the read.
 *
 * It also reads named users and groups alone (readSubjects: 1 request per named user or login,
 * plus the application and the group hierarchy once per call) and a change feed (readChanges:
 * users by `last_updated`, and model events). The feed cannot see what authentik records no
 * model event for: it records them only while serving an HTTP request (AuditMiddleware,
 * authentik/events/middleware.py), so membership changes and deletions made by source syncs
 * or blueprints in its worker, `ak` shell commands or direct database writes are missed until
 * the next full run (user saves are still seen by `last_updated`); a token that may not view
 * events sees none. Details in authentik.subjects.ts and authentik.feed.ts.
 */
export class AuthentikConnector implements Connector, TargetedSource {
  readonly stats: ReadStats = emptyReadStats();
  private readonly client: AuthentikClient;

  constructor(private readonly options: AuthentikConnectorOptions) {
    this.client = new AuthentikClient(
      {
        baseUrl: options.baseUrl,
        token: options.token,
        egress: options.egress,
        appSlug: options.appSlug,
        retry: options.retry ?? DEFAULT_RETRY,
        requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      },
      this.stats,
    );
  }

  async readSnapshot(signal?: AbortSignal): Promise<Snapshot> {
    const slug = this.options.appSlug;
    const access = slug ? await this.client.applicationAccess(slug, signal) : undefined;

    const users: AuthentikUserLike[] = [];
    for await (const u of this.client.pages('GET /api/v3/core/users/', signal, (page) =>
      this.client.core.coreUsersList({ page, pageSize: PAGE_SIZE, includeGroups: false, includeRoles: false }),
    )) {
      if (typeof u.type === 'string' && SERVICE_ACCOUNT_TYPES.has(u.type)) continue;
      users.push(u);
    }
    const groups: AuthentikGroupLike[] = [];
    for await (const g of this.client.pages('GET /api/v3/core/groups/', signal, (page) =>
      this.client.core.coreGroupsList({ page, pageSize: PAGE_SIZE, includeUsers: false }),
    )) {
      groups.push(g);
    }

    const userGroups = new Map(users.map((u) => [String(u.pk), stringList(u.groups)]));
    const groupParents = new Map(groups.map((g) => [String(g.pk), stringList(g.parents)]));
    const scope = access
      ? appScope({ mode: access.mode, bindings: access.bindings, userGroups, groupParents })
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

  async check(signal?: AbortSignal): Promise<EndpointCheck[]> {
    const slug = this.options.appSlug;
    const steps: CheckStep[] = [];
    let appPk: string | undefined;
    if (slug) {
      steps.push({
        endpoint: `/api/v3/core/applications/${slug}/`,
        gate: true,
        run: async () => {
          appPk = (await this.client.core.coreApplicationsRetrieve({ slug })).pk;
        },
      });
      steps.push({
        endpoint: '/api/v3/policies/bindings/',
        run: async () => {
          await this.client.policies.policiesBindingsList({ target: appPk!, page: 1, pageSize: 1 });
        },
      });
    }
    steps.push({
      endpoint: '/api/v3/core/users/',
      run: async () => {
        const page = await this.client.core.coreUsersList({ page: 1, pageSize: 1, includeGroups: false, includeRoles: false });
        // authentik filters listings by the token user's object permissions rather than refusing.
        if (page.pagination.count === 0) return "no users visible: if there are users, the token's user lacks the permission to view them";
        return undefined;
      },
    });
    steps.push({
      endpoint: '/api/v3/core/groups/',
      run: async () => {
        await this.client.core.coreGroupsList({ page: 1, pageSize: 1, includeUsers: false });
      },
    });
    // Optional: incremental runs read group and membership changes from model events; without
    // them those wait for the next full run (a note, not a failure).
    const missed = 'so incremental runs see only user changes (by last_updated), and group and membership changes wait for the next full run';
    steps.push({
      endpoint: '/api/v3/events/events/',
      run: async () => {
        try {
          const page = await this.client.events.eventsEventsList({ ordering: '-created', page: 1, pageSize: 1 });
          if (page.pagination.count === 0) return `no events visible (the token's user may lack the permission to view events), ${missed}`;
        } catch (error) {
          const status = statusOf(error);
          return `cannot be read (${status ? `HTTP ${status}` : (error as Error).message}), ${missed}`;
        }
        return undefined;
      },
    });
    return runChecks(steps, (step) => withRetry(step.run, { ...this.client.policy(`GET ${step.endpoint}`, signal), retry: NO_RETRY }));
  }

  /**
   * Reads named users and groups alone (a targeted run), with the same scope, mapping and
   * service-account rule as readSnapshot: see authentik.subjects.ts for what it reads and costs.
   */
  readSubjects(names: SubjectNames, signal?: AbortSignal): Promise<SubjectRead> {
    return readAuthentikSubjects(this.client, this.options.appSlug ?? null, names, signal);
  }

  /** A change-feed cursor covering every change from `at` on (with a margin for clock skew): see authentik.feed.ts. */
  feedCursorAt(at: Date): string {
    return authentikFeedCursorAt(at);
  }

  /**
   * Users changed since the cursor (`last_updated`) and the users and groups authentik's model
   * events name; an application or policy-binding change of the integration's application
   * cannot be narrowed. What the feed cannot see is in authentik.feed.ts (and the README).
   */
  readChanges(cursor: string, signal?: AbortSignal): Promise<ChangeFeedRead> {
    return readAuthentikChanges(this.client, this.options.appSlug ?? null, cursor, signal);
  }
}
