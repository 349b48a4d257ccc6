import { sql } from 'kysely';
import pg from 'pg';
import { type ChangeRow, type Cursor, type DirsyncEvent, toEvent } from '../events/event.js';
import type { JsonObject } from '../core/model.js';
import type { Db } from './database.js';

/** The channel run_changes notifies when applied rows commit (migration 2026-11-30T0200-events). */
export const EVENTS_CHANNEL = 'dirsync_events';

/** The largest page one read returns. */
export const MAX_EVENTS = 1_000;

/** A page of the feed and where the next read starts. */
export interface EventPage {
  readonly events: DirsyncEvent[];
  /** The last event's cursor, or the cursor read after when there was none. */
  readonly next: Cursor;
}

/**
 * The event feed: applied change-log rows, in (txid, id) order, each read as an event.
 *
 * A row is handed out only once every transaction older than its own has ended (its txid is
 * below `pg_snapshot_xmin(pg_current_snapshot())`), so a transaction that took an earlier
 * position but commits later can never land behind a cursor a reader already holds: reading
 * after any cursor never skips an event. The price: an event waits for the oldest transaction
 * still open on the Postgres cluster, which keeps events behind a long transaction elsewhere.
 */
export class EventRepository {
  constructor(private readonly db: Db) {}

  /** The feed's current end: the cursor of the last event a reader can see now, {0, 0} when none. */
  async end(): Promise<Cursor> {
    const { rows } = await sql<{ txid: string; id: string }>`
      select txid::text as txid, id from run_changes
      where state = 'applied' and txid < pg_snapshot_xmin(pg_current_snapshot())
      order by txid desc, id desc limit 1
    `.execute(this.db);
    const last = rows[0];
    return last ? { txid: last.txid, id: String(last.id) } : { txid: '0', id: '0' };
  }

  /** Up to `limit` events after `after` (from the start when absent), of one tenant or all. */
  async after(options: { after?: Cursor; tenantId?: string; limit: number }): Promise<EventPage> {
    const after = options.after ?? { txid: '0', id: '0' };
    const { rows } = await sql<{
      id: string;
      txid: string;
      kind: string;
      external_id: string;
      slug: string;
      integration_id: string;
      run_id: string;
      created_at: Date;
      detail: ChangeRow['detail'];
      account_id: string | null;
      person_id: string | null;
      group_id: string | null;
      lock: JsonObject | null;
    }>`
      select c.id, c.txid::text as txid, c.kind, c.external_id, t.slug, c.integration_id, c.run_id, c.created_at, c.detail,
        a.id as account_id, a.user_id as person_id, g.id as group_id, lk.view as lock
      from run_changes c
      join tenants t on t.id = c.tenant_id
      left join accounts a on a.integration_id = c.integration_id
        and a.external_id = case when c.kind like 'membership.%' then c.detail->>'user' when c.kind like 'user.%' then c.external_id end
      left join groups g on g.integration_id = c.integration_id
        and g.external_id = case when c.kind like 'membership.%' then c.detail->>'group' when c.kind like 'group.%' then c.external_id end
      left join lateral (
        select jsonb_build_object('id', l.id::text, 'personId', l.user_id, 'reason', l.reason, 'since', l.created_at) as view
        from locks l
        where c.kind = 'user.deprovisioned' and l.integration_id = c.integration_id and l.external_id = c.external_id
      ) lk on true
      where c.state = 'applied'
        and c.txid < pg_snapshot_xmin(pg_current_snapshot())
        and (c.txid, c.id) > (${after.txid}::xid8, ${after.id}::bigint)
        ${options.tenantId === undefined ? sql`` : sql`and c.tenant_id = ${options.tenantId}::uuid`}
      order by c.txid, c.id
      limit ${Math.min(options.limit, MAX_EVENTS)}
    `.execute(this.db);
    const events = rows.map((r) =>
      toEvent({
        id: String(r.id),
        txid: r.txid,
        kind: r.kind,
        externalId: r.external_id,
        tenantSlug: r.slug,
        integrationId: r.integration_id,
        runId: r.run_id,
        createdAt: r.created_at,
        detail: r.detail,
        ids: { accountId: r.account_id, personId: r.person_id, groupId: r.group_id, lock: r.lock },
      }),
    );
    const last = rows.at(-1);
    return { events, next: last ? { txid: last.txid, id: String(last.id) } : after };
  }
}

/**
 * Wakes a follower when events may have committed: LISTEN on its own connection, resolving
 * `wait()` at the next notification or after `maxWaitMs` (events held back by the visibility
 * horizon become readable without a notification of their own). Not a busy loop: an idle
 * follower costs one wake-up per `maxWaitMs`.
 */
export class EventSignal {
  private pending = false;
  private wake: (() => void) | undefined;

  private constructor(private readonly client: pg.Client) {
    client.on('notification', () => {
      this.pending = true;
      this.wake?.();
    });
  }

  static async listen(databaseUrl: string): Promise<EventSignal> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query(`listen ${EVENTS_CHANNEL}`);
    return new EventSignal(client);
  }

  /** Resolves at the next notification (or at once if one came since the last wait), or after maxWaitMs. */
  async wait(maxWaitMs: number): Promise<void> {
    if (!this.pending) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, maxWaitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    this.pending = false;
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}
