import { sql } from 'kysely';
import type { Cursor } from '../events/event.js';
import type { Db } from './database.js';
import type { DeliveryStatus } from './schema.js';
import { EVENTS_CHANNEL } from './event.repository.js';

/** An endpoint as stored, secrets still sealed. */
export interface StoredEndpoint {
  readonly id: string;
  readonly url: string;
  readonly tenantId: string | null;
  readonly types: readonly string[] | null;
  readonly secret: Buffer;
  readonly previousSecret: Buffer | null;
  readonly previousSecretExpiresAt: Date | null;
  readonly enabled: boolean;
  readonly disabledReason: string | null;
  readonly cursor: Cursor;
  readonly failingSince: Date | null;
  readonly createdAt: Date;
}

/** One event's delivery to an endpoint, as `dirsync endpoint deliveries` shows it. */
export interface DeliveryView {
  readonly eventId: string;
  readonly cursor: string;
  readonly type: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly lastStatusCode: number | null;
  readonly lastError: string | null;
  readonly responseExcerpt: string | null;
  readonly nextAttemptAt: string | null;
  readonly updatedAt: string;
}

/** What one attempt to deliver an event came to. */
export interface Attempt {
  readonly eventId: string;
  readonly cursor: string;
  readonly type: string;
  readonly ok: boolean;
  readonly statusCode: number | null;
  readonly error: string | null;
  readonly responseExcerpt: string | null;
  /** For a failed attempt that will be tried again. */
  readonly nextAttemptAt: Date | null;
}

export class EndpointRepository {
  constructor(private readonly db: Db) {}

  async create(values: { url: string; tenantId: string | null; types: readonly string[] | null; seal: (id: string) => Buffer; cursor: Cursor }): Promise<StoredEndpoint> {
    const id = crypto.randomUUID();
    const row = await this.db
      .insertInto('event_endpoints')
      .values({
        id,
        url: values.url,
        tenant_id: values.tenantId,
        types: values.types ? [...values.types] : null,
        secret: values.seal(id),
        cursor_txid: values.cursor.txid,
        cursor_id: values.cursor.id,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toEndpoint(row);
  }

  async find(id: string): Promise<StoredEndpoint | undefined> {
    const row = await this.db.selectFrom('event_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toEndpoint(row);
  }

  async list(): Promise<StoredEndpoint[]> {
    const rows = await this.db.selectFrom('event_endpoints').selectAll().orderBy('created_at').execute();
    return rows.map(toEndpoint);
  }

  /** Ids of enabled endpoints: the ones deliveries run for. */
  async enabledIds(): Promise<string[]> {
    const rows = await this.db.selectFrom('event_endpoints').select('id').where('enabled', '=', true).execute();
    return rows.map((r) => r.id);
  }

  async delete(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('event_endpoints').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** A new secret; the old one keeps signing until `previousUntil` (null: stops at once). */
  async rotateSecret(id: string, secret: Buffer, previousUntil: Date | null): Promise<StoredEndpoint | undefined> {
    const row = await this.db
      .updateTable('event_endpoints')
      .set({
        previous_secret: previousUntil ? sql`secret` : null,
        previous_secret_expires_at: previousUntil,
        secret,
        updated_at: sql`now()`,
      } as never)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row && toEndpoint(row);
  }

  /** Re-sends from `cursor` on: the endpoint's position moves back (or on), and it is enabled again. */
  /**
   * Moves the endpoint to `cursor` for a replay, enabled, in one transaction: events after it
   * that wait for a retry are due at once (a replay means "send now"), and those at or before
   * it, which the replay skips, are marked failed. Notifies the events channel, so a running
   * worker starts delivering without waiting for its sweep.
   */
  async moveTo(id: string, cursor: Cursor): Promise<StoredEndpoint | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .updateTable('event_endpoints')
        .set({ cursor_txid: cursor.txid, cursor_id: cursor.id, enabled: true, disabled_reason: null, failing_since: null, updated_at: sql`now()` })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      if (!row) return undefined;
      await sql`
        update event_deliveries set
          next_attempt_at = null,
          status = case when skipped then 'failed' else status end,
          last_error = case when skipped then left('skipped by a replay after ' || ${`${cursor.txid}.${cursor.id}`}::text || '; last: ' || coalesce(last_error, 'HTTP ' || last_status_code), 500) else last_error end,
          updated_at = now()
        from (select d.id as delivery_id,
                (split_part(d.event_cursor, '.', 1)::xid8, split_part(d.event_cursor, '.', 2)::bigint) <= (${cursor.txid}::xid8, ${cursor.id}::bigint) as skipped
              from event_deliveries d where d.endpoint_id = ${id}::uuid and d.status = 'retrying') r
        where event_deliveries.id = r.delivery_id
      `.execute(trx);
      await sql`select pg_notify(${EVENTS_CHANNEL}, '')`.execute(trx);
      return toEndpoint(row);
    });
  }

  /**
   * Records attempts, in one transaction: each attempt's delivery row, and for the endpoint its
   * new position (after the last event delivered) and whether it is failing: `no`, `starts`
   * (a failure after a success: the 3 days count from now) or `continues`. Only moves on from
   * `from`, the position the deliverer started at: false when a replay moved the endpoint
   * meanwhile (it wins, and the deliverer stops).
   */
  async recordAttempts(endpointId: string, from: Cursor, to: Cursor, attempts: readonly Attempt[], failing: 'no' | 'continues' | 'starts'): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (attempts.length > 0) {
        await sql`
          insert into event_deliveries (endpoint_id, event_id, event_cursor, event_type, status, attempts, last_status_code, last_error, response_excerpt, next_attempt_at)
          select ${endpointId}::uuid, t.event_id, t.cursor, t.type, t.status, 1, t.code, t.error, t.excerpt, t.next_at
          from unnest(${attempts.map((a) => a.eventId)}::bigint[], ${attempts.map((a) => a.cursor)}::text[], ${attempts.map((a) => a.type)}::text[],
            ${attempts.map((a) => (a.ok ? 'delivered' : a.nextAttemptAt ? 'retrying' : 'failed'))}::text[], ${attempts.map((a) => a.statusCode)}::int[],
            ${attempts.map((a) => a.error)}::text[], ${attempts.map((a) => a.responseExcerpt)}::text[], ${attempts.map((a) => a.nextAttemptAt)}::timestamptz[])
            as t(event_id, cursor, type, status, code, error, excerpt, next_at)
          on conflict (endpoint_id, event_id) do update set status = excluded.status, attempts = event_deliveries.attempts + 1,
            last_status_code = excluded.last_status_code, last_error = excluded.last_error, response_excerpt = excluded.response_excerpt,
            next_attempt_at = excluded.next_attempt_at, updated_at = now()
        `.execute(trx);
      }
      const moved = await sql`
        update event_endpoints set cursor_txid = ${to.txid}::xid8, cursor_id = ${to.id}::bigint,
          failing_since = case ${failing}::text when 'no' then null when 'starts' then now() else coalesce(failing_since, now()) end,
          updated_at = now()
        where id = ${endpointId}::uuid and cursor_txid = ${from.txid}::xid8 and cursor_id = ${from.id}::bigint
      `.execute(trx);
      return Number(moved.numAffectedRows ?? 0n) > 0;
    });
  }

  /** An event's delivery to the endpoint so far: attempts, and when the next one is due (null when none waits). */
  async deliveryOf(endpointId: string, eventId: string): Promise<{ attempts: number; nextAttemptAt: Date | null }> {
    const row = await this.db
      .selectFrom('event_deliveries')
      .select(['attempts', 'next_attempt_at', 'status'])
      .where('endpoint_id', '=', endpointId)
      .where('event_id', '=', eventId)
      .executeTakeFirst();
    return { attempts: row?.attempts ?? 0, nextAttemptAt: row?.status === 'retrying' ? row.next_attempt_at : null };
  }

  /** Turns an endpoint off, saying why (it failed for too long). */
  async disable(id: string, reason: string): Promise<void> {
    await this.db.updateTable('event_endpoints').set({ enabled: false, disabled_reason: reason, updated_at: sql`now()` } as never).where('id', '=', id).execute();
  }

  async deliveries(endpointId: string, limit: number, offset = 0): Promise<DeliveryView[]> {
    const rows = await this.db
      .selectFrom('event_deliveries')
      .selectAll()
      .where('endpoint_id', '=', endpointId)
      .orderBy('updated_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .offset(offset)
      .execute();
    return rows.map((r) => ({
      eventId: String(r.event_id),
      cursor: r.event_cursor,
      type: r.event_type,
      status: r.status,
      attempts: r.attempts,
      lastStatusCode: r.last_status_code,
      lastError: r.last_error,
      responseExcerpt: r.response_excerpt,
      nextAttemptAt: r.next_attempt_at?.toISOString() ?? null,
      updatedAt: r.updated_at.toISOString(),
    }));
  }

  /**
   * Deletes endpoint deliveries last touched more than `olderThanMs` ago that are finished
   * (delivered, or failed for good), `batch` rows per statement (event_deliveries_age_idx);
   * one still being retried is kept whatever its age. Returns how many went.
   */
  async pruneDeliveries(olderThanMs: number, batch = 5_000): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await sql`
        delete from event_deliveries where id in (
          select id from event_deliveries
          where updated_at < now() - ${olderThanMs} * interval '1 millisecond' and status <> 'retrying'
          limit ${batch})
      `.execute(this.db);
      const n = Number(result.numAffectedRows ?? 0n);
      total += n;
      if (n < batch) return total;
    }
  }
}

function toEndpoint(row: {
  id: string;
  url: string;
  tenant_id: string | null;
  types: string[] | null;
  secret: Buffer;
  previous_secret: Buffer | null;
  previous_secret_expires_at: Date | null;
  enabled: boolean;
  disabled_reason: string | null;
  cursor_txid: string;
  cursor_id: string;
  failing_since: Date | null;
  created_at: Date;
}): StoredEndpoint {
  return {
    id: row.id,
    url: row.url,
    tenantId: row.tenant_id,
    types: row.types,
    secret: row.secret,
    previousSecret: row.previous_secret,
    previousSecretExpiresAt: row.previous_secret_expires_at,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    cursor: { txid: String(row.cursor_txid), id: String(row.cursor_id) },
    failingSince: row.failing_since,
    createdAt: row.created_at,
  };
}
