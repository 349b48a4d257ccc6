import { type RawBuilder, sql } from 'kysely';
import type { Db } from './database.js';
import type { Provider, RunSubjectKind, WebhookOutcome } from './schema.js';

export interface WebhookTarget {
  id: string;
  provider: Provider;
  enabled: boolean;
  oktaAppId: string | null;
  secretHash: string;
  /** The secret the last rotation retired, while its grace period lasts (by the database's clock). */
  previousSecretHash: string | null;
}

export interface WebhookDelivery {
  id: string;
  receivedAt: string;
  source: Provider;
  eventTypes: string[];
  eventIds: string[];
  outcome: WebhookOutcome;
  runId: string | null;
  detail: string | null;
}

/**
 * A CTE that turns off synchronous_commit for the rest of the statement's own (implicit)
 * transaction: one round trip, where BEGIN / SET LOCAL / ... / COMMIT would take four.
 * Statements that use it must select `from async_commit` so that it is evaluated.
 */
const ASYNC_COMMIT = sql`async_commit as materialized (select set_config('synchronous_commit', 'off', true))`;

/** The previous secret's hash while its grace period lasts, null after: expired is the same as absent. */
const PREVIOUS_SECRET_HASH = sql<string | null>`case when webhook_secret_previous_expires_at > now() then webhook_secret_previous_hash end`.as(
  'previous_secret_hash',
);

/** Rejected deliveries recorded per integration per hour; the rest are answered, not recorded. */
export const REJECTIONS_PER_HOUR = 60;

export class WebhookRepository {
  constructor(private readonly db: Db) {}

  async findTarget(integrationId: string): Promise<WebhookTarget | undefined> {
    const row = await this.db
      .selectFrom('integrations')
      .select(['id', 'provider', 'enabled', 'okta_app_id', 'webhook_secret_hash', PREVIOUS_SECRET_HASH])
      .where('id', '=', integrationId)
      .executeTakeFirst();
    return (
      row && {
        id: row.id,
        provider: row.provider,
        enabled: row.enabled,
        oktaAppId: row.okta_app_id,
        secretHash: row.webhook_secret_hash,
        previousSecretHash: row.previous_secret_hash,
      }
    );
  }

  /**
   * The fast path of a burst, in one statement: records the event ids of a relevant delivery
   * (an ignored one stores nothing: its ids are not needed to drop a redelivery, which is
   * ignored again) and, when the delivery is relevant and new and a run is already queued for
   * the integration, records the delivery as coalesced into that run. Returns the ids that
   * were new and the run it joined, if any.
   */
  async coalesce(delivery: {
    integrationId: string;
    /**
     * sha256 of the presented secret: nothing is written unless it matches the current secret,
     * or the previous one within its grace period, and the integration is enabled.
     */
    secretHash: string;
    source: Provider;
    eventTypes: readonly string[];
    eventIds: readonly string[];
    relevant: boolean;
    /**
     * What the events name, for a targeted run: joins only a queued quick-lane run (targeted or
     * incremental), adding these subjects to it. Null when the events cannot be narrowed: then
     * nothing is joined and the caller asks for a full run.
     */
    subjects: ReadonlyArray<{ kind: RunSubjectKind; name: string }> | null;
  }): Promise<{
    target: { enabled: boolean; secretHash: string; previousSecretHash: string | null } | undefined;
    fresh: string[];
    joinedRunId: string | null;
  }> {
    const ids = [...new Set(delivery.eventIds)];
    const join = delivery.subjects !== null;
    const kinds = (delivery.subjects ?? []).map((s) => s.kind);
    const names = (delivery.subjects ?? []).map((s) => s.name);
    // Only bookkeeping is written here (the run it joins is already durable), so the statement
    // does not wait for the WAL flush (see ASYNC_COMMIT): a crash could lose the last few of
    // these rows, and with them at worst the dedupe of a redelivery, which costs one extra run.
    // The previous secret's expiry is read with this statement's now(), so the caller's check
    // of the hashes it returns agrees with what the statement allowed.
    const { rows } = await sql<{
      enabled: boolean | null;
      secret_hash: string | null;
      previous_secret_hash: string | null;
      fresh: string[] | null;
      joined: string | null;
    }>`
      with ${ASYNC_COMMIT}, target as (
        select enabled, webhook_secret_hash, ${PREVIOUS_SECRET_HASH} from integrations where id = ${delivery.integrationId}::uuid
      ), allowed as (
        select 1 from target
        where enabled and (webhook_secret_hash = ${delivery.secretHash} or previous_secret_hash = ${delivery.secretHash})
      ), ev as (
        insert into webhook_events (integration_id, event_id)
        select ${delivery.integrationId}::uuid, e from unnest(${ids}::text[]) as e
        where exists (select 1 from allowed) and ${delivery.relevant}::boolean
        on conflict do nothing
        returning event_id
      ), queued as (
        -- Locked, so the run cannot start before its subjects are in (RunRepository.claim waits);
        -- one that started already no longer matches, and a new run is asked for instead.
        select id from runs
        where integration_id = ${delivery.integrationId}::uuid and status = 'queued' and dry_run = false and approves_run_id is null
          and lane = 'quick' and ${join}::boolean and exists (select 1 from allowed)
        limit 1
        for update
      ), named as (
        insert into run_subjects (run_id, kind, name)
        select queued.id, s.kind, s.name from queued, unnest(${kinds}::text[], ${names}::text[]) as s (kind, name)
        where ${delivery.relevant}::boolean and (cardinality(${ids}::text[]) = 0 or exists (select 1 from ev))
        on conflict do nothing
      ), joined as (
        insert into webhook_deliveries (integration_id, source, event_types, event_ids, outcome, run_id)
        select ${delivery.integrationId}::uuid, ${delivery.source}, ${[...delivery.eventTypes]}::text[], ${ids}::text[], 'triggered', queued.id
        from queued
        where ${delivery.relevant}::boolean and (cardinality(${ids}::text[]) = 0 or exists (select 1 from ev))
        returning run_id
      )
      select (select enabled from target) as enabled, (select webhook_secret_hash from target) as secret_hash,
        (select previous_secret_hash from target) as previous_secret_hash,
        (select array_agg(event_id) from ev) as fresh, (select run_id from joined) as joined
      from async_commit
    `.execute(this.db);
    const row = rows[0];
    const target =
      row && row.secret_hash !== null
        ? { enabled: row.enabled === true, secretHash: row.secret_hash, previousSecretHash: row.previous_secret_hash }
        : undefined;
    return { target, fresh: row?.fresh ?? [], joinedRunId: row?.joined ?? null };
  }

  /** What reading a delivery needs before it is authenticated: the provider, and Okta's app id. */
  async findProvider(integrationId: string): Promise<{ provider: Provider; oktaAppId: string | null } | undefined> {
    const row = await this.db.selectFrom('integrations').select(['provider', 'okta_app_id']).where('id', '=', integrationId).executeTakeFirst();
    return row && { provider: row.provider, oktaAppId: row.okta_app_id };
  }

  async forgetEvents(integrationId: string, eventIds: readonly string[]): Promise<void> {
    if (eventIds.length === 0) return;
    await this.db
      .deleteFrom('webhook_events')
      .where('integration_id', '=', integrationId)
      .where('event_id', 'in', [...eventIds])
      .execute();
  }

  /** Records a delivery; like `coalesce`, without waiting for the WAL flush (it is an audit row). */
  async recordDelivery(delivery: {
    integrationId: string;
    source: Provider;
    eventTypes: readonly string[];
    eventIds: readonly string[];
    outcome: WebhookOutcome;
    runId: string | null;
    detail?: string;
  }): Promise<void> {
    await sql`
      with ${ASYNC_COMMIT}
      insert into webhook_deliveries (integration_id, source, event_types, event_ids, outcome, run_id, detail)
      select ${delivery.integrationId}::uuid, ${delivery.source}, ${[...delivery.eventTypes]}::text[], ${[...delivery.eventIds]}::text[],
        ${delivery.outcome}, ${delivery.runId}::uuid, ${delivery.detail ?? null}
      from async_commit
    `.execute(this.db);
  }

  /**
   * Records a delivery refused with `status` (its reason in `detail`), at most
   * REJECTIONS_PER_HOUR per integration: someone hammering a webhook URL with a wrong secret
   * must not fill the table; the first ones tell the admin what is wrong.
   */
  async recordRejection(delivery: { integrationId: string; source: Provider; status: number; reason: string }): Promise<void> {
    await sql`
      insert into webhook_deliveries (integration_id, source, event_types, event_ids, outcome, run_id, detail)
      select ${delivery.integrationId}::uuid, ${delivery.source}, '{}'::text[], '{}'::text[], 'rejected', null,
        ${`HTTP ${delivery.status}: ${delivery.reason}`.slice(0, 500)}
      where (select count(*) from webhook_deliveries
             where integration_id = ${delivery.integrationId}::uuid and outcome = 'rejected'
               and received_at > now() - interval '1 hour') < ${REJECTIONS_PER_HOUR}
    `.execute(this.db);
  }

  async listDeliveries(integrationId: string, limit = 50): Promise<WebhookDelivery[]> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('integration_id', '=', integrationId)
      .orderBy('received_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: String(r.id),
      receivedAt: r.received_at.toISOString(),
      source: r.source,
      eventTypes: r.event_types,
      eventIds: r.event_ids,
      outcome: r.outcome,
      runId: r.run_id,
      detail: r.detail,
    }));
  }

  /**
   * Forgets event ids received more than `olderThanMs` ago (the redelivery window the caller
   * keeps them for), `batch` rows per statement. Returns how many went.
   */
  async pruneEvents(olderThanMs: number, batch = 5_000): Promise<number> {
    return deleteInBatches(
      batch,
      () => sql`
        delete from webhook_events where (integration_id, event_id) in (
          select integration_id, event_id from webhook_events
          where received_at < now() - ${olderThanMs} * interval '1 millisecond'
          limit ${batch})
      `,
      this.db,
    );
  }

  /**
   * Deletes webhook deliveries (triggered, duplicate and rejected ones alike) received more
   * than `olderThanMs` ago, `batch` rows per statement (webhook_deliveries_received_idx).
   * Returns how many went.
   */
  async pruneDeliveries(olderThanMs: number, batch = 5_000): Promise<number> {
    return deleteInBatches(
      batch,
      () => sql`
        delete from webhook_deliveries where id in (
          select id from webhook_deliveries
          where received_at < now() - ${olderThanMs} * interval '1 millisecond'
          limit ${batch})
      `,
      this.db,
    );
  }
}

/** Runs a `delete ... limit batch` statement until it deletes fewer than `batch` rows; the total deleted. */
async function deleteInBatches(batch: number, statement: () => RawBuilder<unknown>, db: Db): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await statement().execute(db);
    const n = Number(result.numAffectedRows ?? 0n);
    total += n;
    if (n < batch) return total;
  }
}
