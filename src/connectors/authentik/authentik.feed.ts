import type { Event as AkEvent, EventActions } from '@goauthentik/api';
import type { ChangeFeedRead } from '../connector.js';
import { IdpReadError } from '../connector.js';
import { statusOf } from '../retry.js';
import { type AuthentikClient, GONE, PAGE_SIZE } from './authentik.client.js';
import { MODEL_ACTIONS, bindingConcerns, subjectOfModelEvent } from './authentik.model-events.js';

/**
 * authentik's change feed for incremental runs, in two parts:
 * - users whose `last_updated` is after the cursor (`GET /core/users/?last_updated__gt=`,
 *   paged): any save of a user, whoever made it, bumps it (`auto_now=True` on User in
 *   authentik/core/models.py), though a bulk `QuerySet.update()` does not;
 * - model events (`GET /events/events/?actions=model_created&actions=model_updated&
 *   actions=model_deleted`, newest first, read back to the cursor): a user or group event names
 *   it (this is how deletions and membership changes are seen: neither bumps a user's
 *   `last_updated`), and an event for the integration's application or one of its policy
 *   bindings cannot be narrowed (the run reads the whole scope).
 *
 * What it cannot see: authentik records model events only while it serves an HTTP request (its
 * AuditMiddleware connects the post_save, pre_delete and m2m_changed handlers per request and
 * drops signals from any other context: authentik/events/middleware.py). So a membership
 * change or a deletion made outside a request (by a source sync or a blueprint running in the
 * worker, `ak` shell commands, direct database writes) is not in the feed; user saves
 * are still seen through `last_updated`, but a group's own changes are not. A token whose user
 * may not view events gets an empty event list (authentik filters listings by permission)
 * rather than an error, so the feed then sees user saves only. Full runs (`--full-every`,
 * default daily) catch up on all of these.
 *
 * The cursor holds an instant of authentik's clock (from its `Date` header, falling back to
 * dirsync's own) and what was read in the FEED_OVERLAP_MS before it: users by `last_updated`,
 * events by pk. The next read starts FEED_OVERLAP_MS before that instant, since a change is
 * stamped when it is saved and may commit later, and the clocks may differ; what it finds that
 * was read already is passed over, so a feed with nothing new names nothing (2 requests). A
 * change read twice would cost a targeted read, one missed would stay until the next full run.
 * `authentik:v2:` and base64url JSON `{t, u: {pk: last_updated}, e: [event pk]}`; a v1 cursor
 * (`authentik:v1:<instant>`, already behind) is still read.
 */

const CURSOR_V1 = 'authentik:v1:';
const CURSOR_V2 = 'authentik:v2:';

/**
 * How far a read reaches back before its cursor's instant, in ms: a save stamped before it and
 * committed after (authentik's requests commit within seconds), the `Date` header's whole
 * seconds, and the skew between dirsync's clock and authentik's for a full run's position.
 */
export const FEED_OVERLAP_MS = 10_000;

/** Where a read starts, and what of the overlap before it was read already. */
interface FeedPosition {
  readonly at: Date;
  /** user pk -> last_updated (ISO) already read */
  readonly users: Readonly<Record<string, string>>;
  /** event pks already read */
  readonly events: readonly string[];
  /** v1 cursors were stored already FEED_OVERLAP_MS behind. */
  readonly behind: boolean;
}

/** A cursor from which the feed yields every change made at or after `at` (and in the overlap before it). */
export function authentikFeedCursorAt(at: Date): string {
  return encodeCursor({ at, users: {}, events: [], behind: false });
}

function encodeCursor(position: FeedPosition): string {
  return `${CURSOR_V2}${Buffer.from(JSON.stringify({ t: position.at.toISOString(), u: position.users, e: position.events })).toString('base64url')}`;
}

function decodeCursor(cursor: string): FeedPosition | undefined {
  if (cursor.startsWith(CURSOR_V1)) {
    const at = new Date(cursor.slice(CURSOR_V1.length));
    return Number.isFinite(at.getTime()) ? { at, users: {}, events: [], behind: true } : undefined;
  }
  if (!cursor.startsWith(CURSOR_V2)) return undefined;
  try {
    const raw = JSON.parse(Buffer.from(cursor.slice(CURSOR_V2.length), 'base64url').toString('utf8')) as { t?: unknown; u?: unknown; e?: unknown };
    const at = new Date(typeof raw.t === 'string' ? raw.t : NaN);
    const users = raw.u && typeof raw.u === 'object' && !Array.isArray(raw.u) ? (raw.u as Record<string, string>) : {};
    const events = Array.isArray(raw.e) ? raw.e.filter((e): e is string => typeof e === 'string') : [];
    return Number.isFinite(at.getTime()) ? { at, users, events, behind: false } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Changes since `cursor`: costs 1 request per 500 changed users and 1 per 500 model events in
 * the window (2 when nothing changed), plus 1 for the application when an application or
 * policy-binding event must be told apart. Never throws for a feed it cannot read (a request
 * failing after retries, events the token may not read, a cursor it did not make): answers
 * `unavailable` with the reason. Aborting (`signal`) still throws.
 */
export async function readAuthentikChanges(client: AuthentikClient, appSlug: string | null, cursor: string, signal?: AbortSignal): Promise<ChangeFeedRead> {
  const position = decodeCursor(cursor);
  if (!position) return { kind: 'unavailable', reason: `the change-feed cursor ${JSON.stringify(cursor.slice(0, 60))} is not an authentik cursor, so the whole scope is read instead` };
  const since = new Date(position.at.getTime() - (position.behind ? 0 : FEED_OVERLAP_MS));
  const localStart = Date.now();
  // Everything read within the overlap, for the next read to pass over.
  const readUsers: Record<string, string> = {};
  const readEvents: Array<{ pk: string; created: Date | undefined }> = [];
  const seenEvents = new Set(position.events);
  let serverStart: Date | undefined;
  const userIds = new Set<string>();
  const groupIds = new Set<string>();
  const unnarrowable: string[] = [];
  let changes = 0;
  try {
    // `gt` on a timestamp sent to the millisecond (the SDK's toISOString) of one kept to the microsecond: 1 ms earlier reads "at or after".
    const after = new Date(since.getTime() - 1);
    for await (const u of client.pages('GET /api/v3/core/users/?last_updated__gt=', signal, async (page) => {
      const response = await client.core.coreUsersListRaw({ lastUpdatedGt: after, page, pageSize: PAGE_SIZE, includeGroups: false, includeRoles: false });
      if (page === 1) serverStart = serverDateOf(response.raw);
      return response.value();
    })) {
      const pk = String(u.pk);
      const version = u.lastUpdated instanceof Date ? u.lastUpdated.toISOString() : undefined;
      if (version) readUsers[pk] = version;
      if (version !== undefined && position.users[pk] === version) continue;
      changes += 1;
      userIds.add(pk);
    }

    let app: { pk: string; name: string } | typeof GONE | undefined;
    const application = async () =>
      (app ??= await client.retrieve(`GET /api/v3/core/applications/${appSlug}/`, signal, () => client.core.coreApplicationsRetrieve({ slug: appSlug as string })));
    for await (const event of modelEventsSince(client, since, signal)) {
      readEvents.push({ pk: event.pk, created: event.created instanceof Date ? event.created : undefined });
      if (seenEvents.has(event.pk)) continue;
      changes += 1;
      const subject = subjectOfModelEvent(event.action, event.context?.model);
      if (subject.kind === 'user') userIds.add(subject.id);
      else if (subject.kind === 'group') groupIds.add(subject.id);
      else if ((subject.kind === 'application' || subject.kind === 'binding') && appSlug) {
        const ours = await application();
        if (ours === GONE) {
          unnarrowable.push(`authentik has no application "${appSlug}" any more`);
        } else if (subject.kind === 'application' && subject.pk === ours.pk) {
          unnarrowable.push(`authentik application ${ours.name} changed (${event.action})`);
        } else if (subject.kind === 'binding' && bindingConcerns(subject.name, ours) !== false) {
          unnarrowable.push(`a policy binding of authentik application ${ours.name} changed (${event.action}: ${subject.name})`);
        }
      }
    }
  } catch (error) {
    if (signal?.aborted) throw error;
    return { kind: 'unavailable', reason: unavailableReason(error) };
  }
  // authentik's clock when it answered the first page; the overlap covers the header's whole seconds.
  const next = new Date(serverStart ? serverStart.getTime() : localStart);
  const from = next.getTime() - FEED_OVERLAP_MS;
  const users = Object.fromEntries(Object.entries(readUsers).filter(([, at]) => Date.parse(at) >= from));
  // An event without a readable time is kept: passing over it again costs nothing.
  const events = readEvents.filter((e) => !e.created || e.created.getTime() >= from).map((e) => e.pk);
  return {
    kind: 'changes',
    names: { userIds: [...userIds], logins: [], groupIds: [...groupIds] },
    unnarrowable: [...new Set(unnarrowable)],
    events: changes,
    cursor: encodeCursor({ at: next, users, events, behind: false }),
  };
}

/**
 * Model events created at or after `since`, each once: authentik lists events newest first
 * (EventViewSet `ordering = ["-created"]`) and has no filter on `created`, so pages are read
 * until one reaches back past `since`. Events added while paging push older ones onto the next
 * page, where they are seen again and dropped by pk.
 */
async function* modelEventsSince(client: AuthentikClient, since: Date, signal: AbortSignal | undefined): AsyncGenerator<AkEvent> {
  const seen = new Set<string>();
  const actions = [...MODEL_ACTIONS] as EventActions[];
  for (let page = 1; ; ) {
    const current = page;
    const result = await client.request(`GET /api/v3/events/events/?page=${current}`, signal, () =>
      client.events.eventsEventsList({ actions, ordering: '-created', page: current, pageSize: PAGE_SIZE }),
    );
    if (!result || !Array.isArray(result.results) || typeof result.pagination?.next !== 'number') {
      throw new IdpReadError(`authentik GET /api/v3/events/events/ page ${current} is not a paginated list`);
    }
    client.stats.records += result.results.length;
    let reachedBack = false;
    for (const event of result.results) {
      // A created time that does not parse is taken as new: reading it costs less than missing it.
      if (event.created instanceof Date && event.created.getTime() < since.getTime()) {
        reachedBack = true;
        continue;
      }
      if (typeof event.pk !== 'string' || seen.has(event.pk)) continue;
      seen.add(event.pk);
      yield event;
    }
    const next = result.pagination.next;
    if (reachedBack || !next) return;
    if (next <= current) throw new IdpReadError(`authentik GET /api/v3/events/events/ paginates in a loop (page ${current} points back to page ${next})`);
    page = next;
  }
}

/** authentik's clock from an answer's `Date` header (whole seconds, truncated), if it sent one. */
function serverDateOf(response: Response): Date | undefined {
  const at = Date.parse(response.headers.get('date') ?? '');
  return Number.isFinite(at) ? new Date(at) : undefined;
}

function unavailableReason(error: unknown): string {
  const status = error instanceof IdpReadError ? error.status : statusOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if ((status === 401 || status === 403) && message.includes('/events/events/')) {
    return `the token's user may not read authentik's events (${message}); give it permission to view events for incremental runs, the whole scope is read instead`;
  }
  return `authentik's change feed could not be read (${message}), so the whole scope is read instead`;
}
