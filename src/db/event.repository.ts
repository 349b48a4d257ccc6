import { type RawBuilder, sql } from 'kysely';
import pg from 'pg';
import { type ChangeRow, type Cursor, type DirsyncEvent, compareCursors, toEvent } from '../events/event.js';
import type { Db } from './database.js';

/** The channel run_changes notifies when applied rows commit (migration 2026-11-30T0200-events). */
export const EVENTS_CHANNEL = 'dirsync_events';

/**
 * The feed's visibility horizon: every transaction with a lower id has ended, or runs in
 * another database of the Postgres server (so cannot write this feed). It is the lowest id
 * among the transactions in progress (pg_current_snapshot) whose backend is connected to this
 * database, else the snapshot's xmax. A transaction that ends between the snapshot and the
 * pg_locks read only makes the horizon lower than it could be, never higher. Comparing by the
 * low 32 bits matches pg_locks's xid against the snapshot's xid8 (wraparound aside, which
 * Postgres keeps far apart).
 */
const HORIZON = sql<string>`(
  with snap as (select pg_current_snapshot() as s)
  select coalesce(
    (select min(x) from snap, pg_snapshot_xip(snap.s) as x
     where exists (select 1 from pg_locks l join pg_stat_activity a on a.pid = l.pid
                   where l.locktype = 'transactionid' and l.transactionid::text::bigint = (x::text::bigint & 4294967295)
                     and a.datid = (select oid from pg_database where datname = current_database()))),
    (select pg_snapshot_xmax(snap.s) from snap)))`;

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
 * A row is handed out only once every transaction of this database older than its own has
 * ended (its txid is below HORIZON), so a transaction that took an earlier position but
 * commits later can never land behind a cursor a reader already holds: reading after any
 * cursor never skips an event. The price: an event waits for the oldest transaction still
 * open in this database, so a long transaction (an idle `psql` session mid-transaction) holds
 * events back until it ends; other databases on the server do not.
 */
export class EventRepository {
  constructor(private readonly db: Db) {}

  /** Whether a cursor names a transaction that has not started yet (no event can be there). */
  async isAhead(cursor: Cursor): Promise<boolean> {
    const { rows } = await sql<{ ahead: boolean }>`select ${cursor.txid}::xid8 >= pg_snapshot_xmax(pg_current_snapshot()) as ahead`.execute(this.db);
    return rows[0]?.ahead ?? false;
  }

  /** The feed's current end: the cursor of the last event a reader can see now, {0, 0} when none. */
  async end(): Promise<Cursor> {
    return this.endBelow(await this.horizon());
  }

  /** The visibility horizon now (see HORIZON), as xid8 text. */
  private async horizon(): Promise<string> {
    const { rows } = await sql<{ horizon: string }>`select ${HORIZON}::text as horizon`.execute(this.db);
    return rows[0]!.horizon;
  }

  /**
   * Deletes events (applied change-log rows) written more than `olderThanMs` ago whose run is
   * gone: pruned by retention (RunRepository.pruneFinished takes a run's rows with it), or
   * deleted with its integration, or none (an integration's deletion's own events). Rows of a
   * run still kept (held, in progress, recent, or its integration's last) stay with their run,
   * so a kept run's change log is whole. Walks the old rows once, oldest first, `batch` rows per
   * statement (run_changes_applied_age_idx). Returns how many rows went.
   */
  async prune(olderThanMs: number, batch = 5_000): Promise<number> {
    let pruned = 0;
    let after: { at: string; id: string } = { at: '-infinity', id: '0' };
    for (;;) {
      const { rows } = await sql<{ scanned: string; deleted: string; last_at: string | null; last_id: string | null }>`
        with candidates as (
          select c.id, c.created_at, c.run_id from run_changes c
          where c.state = 'applied' and c.created_at < now() - ${olderThanMs} * interval '1 millisecond'
            and (c.created_at, c.id) > (${after.at}::timestamptz, ${after.id}::bigint)
          order by c.created_at, c.id
          limit ${batch}
        ), gone as (
          delete from run_changes c using candidates k
          where c.id = k.id and (k.run_id is null or not exists (select 1 from runs r where r.id = k.run_id))
          returning c.id
        ), last as (
          select created_at, id from candidates order by created_at desc, id desc limit 1
        )
        select (select count(*) from candidates) as scanned, (select count(*) from gone) as deleted,
          (select created_at::text from last) as last_at, (select id::text from last) as last_id
      `.execute(this.db);
      const row = rows[0]!;
      pruned += Number(row.deleted);
      if (Number(row.scanned) < batch || row.last_at === null || row.last_id === null) break;
      after = { at: row.last_at, id: row.last_id };
    }
    return pruned;
  }

  /**
   * Up to `limit` events after `after` (from the start when absent), of one tenant or all.
   * A tenant's page that is not full moves `next` to the end of the whole feed below the same
   * horizon (every row before it has been looked at), so a tenant's reader does not walk other
   * tenants' events again on its next read.
   */
  async after(options: { after?: Cursor; tenantId?: string; limit: number }): Promise<EventPage> {
    const after = options.after ?? { txid: '0', id: '0' };
    // Taken once, so the page and the end it may move to agree on what is visible.
    const horizon = await this.horizon();
    const limit = Math.min(options.limit, MAX_EVENTS);
    const { rows, events } = await this.read(
      sql`c.txid < ${horizon}::xid8
        and (c.txid, c.id) > (${after.txid}::xid8, ${after.id}::bigint)
        ${options.tenantId === undefined ? sql`` : sql`and c.tenant_id = ${options.tenantId}::uuid`}`,
      sql`c.txid, c.id`,
      limit,
    );
    const last = rows.at(-1);
    const next = last ? { txid: last.txid, id: String(last.id) } : after;
    if (options.tenantId === undefined || rows.length >= limit) return { events, next };
    const end = await this.endBelow(horizon);
    return { events, next: compareCursors(end, next) > 0 ? end : next };
  }

  /**
   * Up to `limit` events before `before` (from the newest visible when absent), newest first,
   * of one tenant or all: the console's events page reads the feed backwards. `next` is the
   * oldest event's cursor (where the following, older page starts), or undefined at the start.
   */
  async before(options: { before?: Cursor; tenantId?: string; limit: number }): Promise<{ events: DirsyncEvent[]; next: Cursor | undefined }> {
    const horizon = await this.horizon();
    const limit = Math.min(options.limit, MAX_EVENTS);
    const { rows, events } = await this.read(
      sql`c.txid < ${horizon}::xid8
        ${options.before ? sql`and (c.txid, c.id) < (${options.before.txid}::xid8, ${options.before.id}::bigint)` : sql``}
        ${options.tenantId === undefined ? sql`` : sql`and c.tenant_id = ${options.tenantId}::uuid`}`,
      sql`c.txid desc, c.id desc`,
      limit,
    );
    const last = rows.at(-1);
    return { events, next: rows.length === limit && last ? { txid: last.txid, id: last.id } : undefined };
  }

  /**
   * What happened to one IdP user or group of an integration (`externalId`: its IdP id; a
   * membership change counts for its user), newest first, at most `limit` events: the
   * console's and the API's history of an account. Uses run_changes_subject_idx.
   */
  async ofSubject(integrationId: string, externalId: string, limit = 100): Promise<DirsyncEvent[]> {
    const { events } = await this.read(
      sql`c.integration_id = ${integrationId}::uuid and coalesce(c.detail ->> 'user', c.external_id) = ${externalId}`,
      sql`c.txid desc, c.id desc`,
      Math.min(limit, MAX_EVENTS),
    );
    return events;
  }

  /** Applied change-log rows matching `where`, in `order`, as events (and the rows' positions). */
  private async read(where: RawBuilder<unknown>, order: RawBuilder<unknown>, limit: number): Promise<{ rows: Array<{ txid: string; id: string }>; events: DirsyncEvent[] }> {
    const { rows } = await sql<{
      id: string;
      txid: string;
      kind: string;
      external_id: string;
      slug: string;
      integration_id: string;
      run_id: string | null;
      created_at: Date;
      detail: ChangeRow['detail'];
      account_id: string | null;
      person_id: string | null;
      group_id: string | null;
    }>`
      select c.id, c.txid::text as txid, c.kind, c.external_id, t.slug, c.integration_id, c.run_id, c.created_at, c.detail,
        a.id as account_id, a.user_id as person_id, g.id as group_id
      from run_changes c
      join tenants t on t.id = c.tenant_id
      -- Added memberships recorded on 2026-11-30 before their write returned ids (see
      -- apply-plan's Written): their account and group as they exist now, if they existed then.
      left join accounts a on c.kind = 'membership.added' and not (c.detail ? 'ids') and a.integration_id = c.integration_id
        and a.external_id = c.detail->>'user' and a.created_at <= c.created_at
      left join groups g on c.kind = 'membership.added' and not (c.detail ? 'ids') and g.integration_id = c.integration_id
        and g.external_id = c.detail->>'group' and g.created_at <= c.created_at
      where c.state = 'applied' and ${where}
      order by ${order}
      limit ${limit}
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
        detail: r.account_id || r.group_id ? withReadIds(r.detail, r.account_id, r.person_id, r.group_id) : r.detail,
      }),
    );
    return { rows: rows.map((r) => ({ txid: r.txid, id: String(r.id) })), events };
  }

  /** The last event below a horizon. */
  private async endBelow(horizon: string): Promise<Cursor> {
    const { rows } = await sql<{ txid: string; id: string }>`
      select c.txid::text as txid, c.id from run_changes c
      where c.state = 'applied' and c.txid < ${horizon}::xid8
      -- Qualified: a bare "txid" here would name the text column above and sort as text.
      order by c.txid desc, c.id desc limit 1
    `.execute(this.db);
    const last = rows[0];
    return last ? { txid: last.txid, id: String(last.id) } : { txid: '0', id: '0' };
  }
}

/** An added membership's detail with the ids found as it is read (an early row recorded without). */
function withReadIds(detail: ChangeRow['detail'], accountId: string | null, personId: string | null, groupId: string | null): ChangeRow['detail'] {
  const ids = { ...(accountId && { accountId }), ...(personId && { personId }), ...(groupId && { groupId }) };
  return { ...(detail ?? {}), ids };
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
  private client: pg.Client | undefined;

  private constructor(private readonly databaseUrl: string) {}

  static async listen(databaseUrl: string): Promise<EventSignal> {
    const signal = new EventSignal(databaseUrl);
    await signal.connect();
    return signal;
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
    // A connection that dropped (Postgres restarted) is made again; meanwhile waits just time out.
    if (!this.client) await this.connect().catch(() => undefined);
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl });
    client.on('error', () => {
      if (this.client === client) this.client = undefined;
      client.end().catch(() => undefined);
    });
    client.on('notification', () => {
      this.pending = true;
      this.wake?.();
    });
    await client.connect();
    await client.query(`listen ${EVENTS_CHANNEL}`);
    this.client = client;
  }
}
