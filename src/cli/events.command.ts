import type { Command } from 'commander';
import type { Db } from '../db/database.js';
import { EventRepository, EventSignal, MAX_EVENTS } from '../db/event.repository.js';
import { type DirsyncEvent, formatCursor } from '../events/event.js';
import { checkCursorReachable, feedTenant, readCursor, readFeed } from '../events/feed.js';
import { emit, jsonOption, parseLimit, table } from './output.js';
import { withContext } from './run-command.js';

/** How long a follower waits for a notification before reading again (events the visibility horizon held back). */
const FOLLOW_RECHECK_MS = 500;

interface EventsOptions {
  tenant?: string;
  after?: string;
  limit?: number;
  follow?: boolean;
  json?: boolean;
}

export function registerEventsCommand(program: Command): void {
  program
    .command('events')
    .description('the event feed (every applied change, oldest first); --follow streams new events as they commit')
    .option('--tenant <slug>', "only this tenant's events (default: every tenant)")
    .option('--after <cursor>', 'start after this cursor (an event\'s "cursor" or a page\'s "next"); default: the first event, or with --follow the events committed from now on')
    .option('--limit <n>', 'events per page, 1 to 1000 (default 100)', parseLimit)
    .option('--follow', 'keep printing events as they commit, one per line, until interrupted (from now on unless --after says where)')
    .addOption(jsonOption())
    .action((opts: EventsOptions) =>
      withContext(async (ctx) => {
        if (!opts.follow) {
          const page = await readFeed(ctx.db, { tenant: opts.tenant, after: opts.after, limit: opts.limit });
          emit(opts.json, page, () => `${eventTable(page.events)}\nnext: ${page.next}`);
          return;
        }
        await follow(ctx.db, ctx.config.databaseUrl, opts);
      }),
    );
}

/**
 * Prints events as they commit (one JSON object per line with --json) until SIGINT or SIGTERM:
 * woken by Postgres NOTIFY on commit, and re-reading every FOLLOW_RECHECK_MS for events the
 * visibility horizon held back. Never a busy loop.
 */
async function follow(db: Db, databaseUrl: string, opts: EventsOptions): Promise<void> {
  const tenantId = await feedTenant(db, opts.tenant);
  // The cursor given is checked once; the loop then reads on from cursors the feed gave out.
  // Without one, following starts at the feed's end, as `tail -f` would: the events committed
  // from now on (the history is `dirsync events` without --follow, or --follow --after).
  const feed = new EventRepository(db);
  let after = readCursor(opts.after);
  await checkCursorReachable(db, after);
  after ??= await feed.end();
  const signal = await EventSignal.listen(databaseUrl);
  // On stderr, so stdout stays one event per line: what is followed, from where.
  process.stderr.write(`following ${opts.tenant ? `tenant ${opts.tenant}'s` : "every tenant's"} events after ${formatCursor(after)} (Ctrl-C stops)\n`);
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!stopped) {
      const page = await feed.after({ ...(after && { after }), ...(tenantId && { tenantId }), limit: opts.limit ?? MAX_EVENTS });
      for (const event of page.events) process.stdout.write(`${opts.json ? JSON.stringify(event) : eventLine(event)}\n`);
      after = page.next;
      if (page.events.length === 0) await signal.wait(FOLLOW_RECHECK_MS);
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await signal.close();
  }
}

function subjectOf(event: DirsyncEvent): string {
  const account = event.data.account as { userName?: string } | undefined;
  const group = event.data.group as { name?: string } | undefined;
  return [account?.userName, group?.name].filter(Boolean).join(' in ');
}

function eventTable(events: readonly DirsyncEvent[]): string {
  return table(
    ['cursor', 'occurredAt', 'type', 'tenant', 'subject'],
    events.map((e) => [e.cursor, e.occurredAt, e.type, e.tenant, subjectOf(e)]),
  );
}

function eventLine(e: DirsyncEvent): string {
  return `${e.cursor}  ${e.occurredAt}  ${e.type}  ${e.tenant}  ${subjectOf(e)}`;
}
