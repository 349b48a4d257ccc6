import type { Db } from '../db/database.js';
import { EventRepository, MAX_EVENTS } from '../db/event.repository.js';
import { TenantRepository } from '../db/tenant.repository.js';
import { NotFoundError, UserError } from '../errors.js';
import { type Cursor, type DirsyncEvent, formatCursor, parseCursor } from './event.js';

/** What `GET /api/v1/events` and `dirsync events` answer (SPEC): `{"events":[event...],"next":CURSOR}`. */
export interface FeedPage {
  readonly events: DirsyncEvent[];
  /** Where to read on from: the last event's cursor, or the one given when nothing was new (a tenant's read may move it past other tenants' events). */
  readonly next: string;
}

/** One read of the feed, as the API and the CLI take it: the tenant by slug, the cursor as text, limit 1 to 1000 (default 100). */
export interface FeedQuery {
  readonly tenant?: string;
  readonly after?: string;
  readonly limit?: number;
}

/** The tenant's id for a feed query (undefined: every tenant). Throws NotFoundError for an unknown slug. */
export async function feedTenant(db: Db, slug: string | undefined): Promise<string | undefined> {
  if (slug === undefined) return undefined;
  const tenant = await new TenantRepository(db).findBySlug(slug);
  if (!tenant) throw new NotFoundError(`tenant "${slug}" does not exist: \`dirsync tenant list\` shows the tenants`);
  return tenant.id;
}

/** Reads a cursor from a client; throws UserError for anything this feed did not give out. */
export function readCursor(text: string | undefined): ReturnType<typeof parseCursor> {
  if (text === undefined || text === '') return undefined;
  const cursor = parseCursor(text);
  if (!cursor) throw new UserError(`"${text.slice(0, 60)}" is not an event cursor: pass the "cursor" of an event or the "next" of a page`);
  return cursor;
}

/**
 * Refuses a cursor no reader can have been given: one from a transaction that has not even
 * started (a typo, or a cursor of another dirsync's database). Reading after it would wait
 * silently for events that never come.
 */
export async function checkCursorReachable(db: Db, cursor: Cursor | undefined): Promise<void> {
  if (!cursor) return;
  if (!(await new EventRepository(db).isAhead(cursor))) return;
  const end = formatCursor(await new EventRepository(db).end());
  throw new UserError(`cursor ${formatCursor(cursor)} is ahead of this feed, whose last event is at ${end}: pass a cursor this feed gave out`);
}

/** A page of events after `after` (from the first event when absent). Throws UserError or NotFoundError for bad input. */
export async function readFeed(db: Db, query: FeedQuery, tenantId?: string): Promise<FeedPage> {
  const limit = query.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS) throw new UserError(`limit must be a whole number from 1 to ${MAX_EVENTS}, not ${JSON.stringify(query.limit)}`);
  const after = readCursor(query.after);
  await checkCursorReachable(db, after);
  const page = await new EventRepository(db).after({ ...(after && { after }), tenantId: tenantId ?? (await feedTenant(db, query.tenant)), limit });
  return { events: page.events, next: formatCursor(page.next) };
}
