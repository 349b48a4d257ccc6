import type okta from '@okta/okta-sdk-nodejs';
import type { CredentialKind } from '../../integrations/credentials.js';
import { type ChangeFeedRead, IdpReadError } from '../connector.js';
import { type RetryPolicy, statusOf, withRetry } from '../retry.js';
import { OKTA_CHANGE_EVENT_FILTER, type OktaEventLike, namesOfOktaEvents } from './okta.events.js';
import { OktaTokenError } from './okta.oauth.js';

/**
 * Incremental runs' change feed for Okta: the System Log, read in its polling form
 * (IDP-FACTS.md "Okta System Log"): `GET /api/v1/logs?since=…&sortOrder=ASCENDING&limit=1000`,
 * then the `Link: rel="next"` of each page, which this form always has, even on an empty page. The
 * first empty page ends a read, and its `next` link is where the next read starts: Okta orders
 * results by persistence time, so nothing logged later is skipped, while `published` may be out
 * of order (irrelevant here: events only name subjects to re-read). Only event types that can
 * change the directory are asked for (OKTA_CHANGE_EVENT_FILTER), so logins cost no pages.
 *
 * Cursors (opaque to callers): `since:<ISO 8601>` from oktaFeedCursorAt, and afterwards
 * `next:<ISO 8601 of the read> <path and query of Okta's next link>`: the whole link, since Okta
 * asks clients to follow its links rather than build `after` requests themselves.
 */

type Client = InstanceType<typeof okta.Client>;

/** What the feed needs of the connector. */
export interface OktaLogRequests {
  /** The org's base URL, without a trailing slash. */
  readonly orgUrl: string;
  /** A client whose access token carries okta.logs.read (an API token's own client otherwise). */
  readonly client: Client;
  readonly auth: CredentialKind;
  /** The connector's retry policy for an endpoint (retries, stats, worded failures). */
  policy(endpoint: string, signal: AbortSignal | undefined): RetryPolicy;
}

export interface FeedOptions {
  /** Events per page: Okta's most (IDP-FACTS: `limit` 0-1000). */
  readonly pageSize?: number;
  /** Pages read in one call; more than that and the run reads the whole scope instead. */
  readonly maxPages?: number;
  readonly now?: () => Date;
}

export const FEED_PAGE_SIZE = 1_000;
export const FEED_MAX_PAGES = 10;
/** How long Okta keeps System Log events (IDP-FACTS: "data is kept 90 days"). */
export const LOG_RETENTION_MS = 90 * 24 * 3600_000;

const LOGS = '/api/v1/logs';

/**
 * How far before the asked time a cursor starts. `at` comes from dirsync's clock (the database's),
 * `since` is compared with Okta's: two clocks, kept by NTP within well under a second of each
 * other. A full read that began at `at` saw every change made before it, so the margin is for
 * the clocks only. An event read twice costs a targeted read of its subject (and a burst of them
 * right after a full run, the whole scope again: see readNamed's cost check); one missed stays
 * missed until the next full run.
 */
export const FEED_OVERLAP_MS = 10_000;

/** A cursor from which the System Log yields every event persisted at or after `at` (less FEED_OVERLAP_MS). */
export function oktaFeedCursorAt(at: Date): string {
  return `since:${new Date(at.getTime() - FEED_OVERLAP_MS).toISOString()}`;
}

/**
 * The changes logged since `cursor`, as the users and groups they name (namesOfOktaEvents) for
 * the integration's app `appId`, deduplicated by event `uuid`. Never throws for a log it cannot
 * read: a cursor older than the log's retention or refused by Okta (400), a missing okta.logs.read
 * scope or admin permission (403, or a token request refused), or failures that outlast the
 * retries answer `unavailable` with the reason. More than `maxPages` pages of changes answer what
 * was read plus an unnarrowable "more changes than one incremental read takes", so the run reads
 * the whole scope; the cursor is where the read stopped. Throws
 * only when `signal` aborts.
 */
export async function readOktaChanges(requests: OktaLogRequests, cursor: string, appId: string | null, signal?: AbortSignal, options: FeedOptions = {}): Promise<ChangeFeedRead> {
  const now = options.now ?? (() => new Date());
  const pageSize = options.pageSize ?? FEED_PAGE_SIZE;
  const maxPages = options.maxPages ?? FEED_MAX_PAGES;
  const start = parseCursor(cursor);
  if (!start) return { kind: 'unavailable', reason: `the stored Okta System Log cursor is not one dirsync writes (${JSON.stringify(cursor.slice(0, 60))})` };
  const ageDays = Math.floor((now().getTime() - start.at.getTime()) / (24 * 3600_000));
  if (now().getTime() - start.at.getTime() > LOG_RETENTION_MS) {
    return { kind: 'unavailable', reason: `the Okta System Log was last read ${ageDays} days ago, and Okta keeps its events for 90 days only` };
  }
  const policy = requests.policy(LOGS, signal);
  const c = requests.client;
  try {
    const pager = (await withRetry(
      () => (start.kind === 'since' ? c.systemLogApi.listLogEvents({ since: start.at.toISOString(), sortOrder: 'ASCENDING', limit: pageSize, filter: OKTA_CHANGE_EVENT_FILTER }) : c.systemLogApi.listLogEvents({})),
      policy,
    )) as unknown as LogPager;
    // A stored next link is followed as Okta wrote it (the SDK follows links the same way).
    if (start.kind === 'next') pager.nextUri = `${requests.orgUrl}${start.link}`;
    const events = new Map<string, OktaEventLike>();
    let anonymous = 0;
    for (let pages = 0; ; pages++) {
      if (pages === maxPages) {
        const more = `more changes since the last run than one incremental read takes (${maxPages} pages of up to ${pageSize} events of Okta's System Log)`;
        return changes(events, appId, nextCursor(pager, now()) ?? cursor, [more]);
      }
      // The SDK's Collection would stop at an empty page too (it yields no item), but it is paged
      // here one page at a time to count pages and keep the empty page's next link.
      const askedAt = now();
      const page = await withRetry(() => nextPage(pager), policy);
      for (const event of page) {
        if (typeof event?.eventType !== 'string') continue;
        // Okta delivers at least once: the same uuid twice is one event.
        const key = typeof event.uuid === 'string' ? event.uuid : `#${++anonymous}`;
        if (!events.has(key)) events.set(key, event as OktaEventLike);
      }
      // No next link is not the polling form: ask again from when this page was asked for.
      if (!pager.nextUri) return changes(events, appId, oktaFeedCursorAt(askedAt), []);
      if (page.length === 0) return changes(events, appId, nextCursor(pager, now())!, []);
    }
  } catch (error) {
    if (signal?.aborted) throw error;
    if (error instanceof IdpReadError) return { kind: 'unavailable', reason: unavailableReason(error, requests.auth) };
    throw error;
  }
}

// What the SDK's Collection offers (its typings describe it loosely).
interface LogPager {
  nextUri: string | undefined;
  getNextPage(): Promise<LogEventLike[]>;
}

interface LogEventLike {
  uuid?: unknown;
  eventType?: unknown;
  target?: unknown;
}

/** One page; a page that fails is asked for again from the same link (the Collection moves it first). */
async function nextPage(pager: LogPager): Promise<LogEventLike[]> {
  const uri = pager.nextUri;
  try {
    const page = await pager.getNextPage();
    if (!Array.isArray(page)) throw new TypeError('Okta answered GET /api/v1/logs with something other than a list of events');
    return page;
  } catch (error) {
    pager.nextUri = uri;
    throw error;
  }
}

function changes(events: ReadonlyMap<string, OktaEventLike>, appId: string | null, cursor: string, more: string[]): ChangeFeedRead {
  const { names, unnarrowable } = namesOfOktaEvents(events.values(), appId);
  return { kind: 'changes', names, unnarrowable: [...unnarrowable, ...more], events: events.size, cursor };
}

function nextCursor(pager: LogPager, at: Date): string | undefined {
  if (!pager.nextUri) return undefined;
  const next = new URL(pager.nextUri);
  return `next:${at.toISOString()} ${next.pathname}${next.search}`;
}

type Start = { kind: 'since'; at: Date } | { kind: 'next'; at: Date; link: string };

function parseCursor(cursor: string): Start | undefined {
  const since = /^since:(\S+)$/.exec(cursor);
  const next = /^next:(\S+) (\/api\/v1\/logs\?\S*)$/.exec(cursor);
  const at = new Date(since?.[1] ?? next?.[1] ?? NaN);
  if (Number.isNaN(at.getTime())) return undefined;
  if (since) return { kind: 'since', at };
  return next ? { kind: 'next', at, link: next[2]! } : undefined;
}

const GRANT_SCOPE = 'grant it in the Okta Admin Console (Applications > the service app > Okta API Scopes)';

/** Why the log cannot be read, worded for the run's record. */
function unavailableReason(error: IdpReadError, auth: CredentialKind): string {
  const cause = error.cause;
  if (cause instanceof OktaTokenError) {
    if (cause.body?.error === 'invalid_scope') return `the service app is not granted the scope okta.logs.read, which reading Okta's System Log needs: ${GRANT_SCOPE}`;
    return `Okta issued no access token for reading its System Log: ${error.problem?.message ?? error.message}`;
  }
  const status = statusOf(cause) ?? error.status;
  const e = cause as { errorCode?: string; errorSummary?: string } | undefined;
  const answer = `HTTP ${status}${e?.errorCode ? ` ${e.errorCode}` : ''}${e?.errorSummary ? ` (${e.errorSummary})` : ''}`;
  if (status === 400) return `Okta refused to read its System Log from the stored cursor (${answer}): the cursor is older than the 180 days Okta allows, or no longer valid`;
  if (status === 403) {
    return auth === 'token'
      ? `the API token's admin may not read Okta's System Log (${answer}): use a token of an admin who can, such as a Read-Only Administrator`
      : `the service app may not read Okta's System Log (${answer}): it needs the scope okta.logs.read (${GRANT_SCOPE}) and an admin role that can read the log`;
  }
  return `Okta's System Log could not be read: ${error.message}`;
}
