import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/** Rows per series a counter is spread over, so that concurrent writers rarely wait on one row. */
export const COUNTER_SHARDS = 8;

/**
 * Prometheus counters kept in Postgres (src/http/metrics.ts says why):
 *
 * - `metric_counters` holds one row per (counter, label set, shard); a scrape sums at most
 *   COUNTER_SHARDS rows per series. Nothing references integrations or runs, so deleting an
 *   integration (and its runs) takes nothing off a counter, and a restart starts from where
 *   the counters stood.
 * - A trigger counts a run reaching succeeded, failed or held (its changes, skipped records and
 *   IdP requests with it) in the same transaction, whichever process or code path ends it.
 *   Webhook deliveries are counted by the receiving process in memory and added here in one
 *   statement per scrape or few seconds (src/webhooks/delivery-counts.ts): a per-delivery
 *   write cost the receiver a fifth of its throughput.
 * - Partial indexes find an integration's last finished and last succeeded run without
 *   reading its history: the per-integration gauges read one index entry each.
 * - Counters start from what the database already records, so an upgrade does not reset them.
 */
export async function up(db: Db): Promise<void> {
  await sql`
    create table metric_counters (
      name text not null,
      labels jsonb not null,
      shard smallint not null,
      value bigint not null,
      primary key (name, labels, shard)
    )
  `.execute(db);
  await sql`
    create function metric_count(metric text, labels jsonb, n bigint) returns void language sql as $$
      insert into metric_counters (name, labels, shard, value)
      select metric, labels, pg_backend_pid() % ${sql.lit(COUNTER_SHARDS)}, n where n > 0
      on conflict (name, labels, shard) do update set value = metric_counters.value + excluded.value
    $$
  `.execute(db);
  // A whole, non-negative number from a JSON field, or 0: a counter must never make a run's finish fail.
  await sql`
    create function metric_json_count(doc jsonb, key text) returns bigint language sql immutable as $$
      select case when jsonb_typeof(doc -> key) = 'number' and (doc ->> key)::numeric > 0
        then floor((doc ->> key)::numeric)::bigint else 0 end
    $$
  `.execute(db);
  await sql`
    create function runs_count_finished() returns trigger language plpgsql as $$
    declare
      idp text;
      kind text;
    begin
      perform metric_count('dirsync_runs_finished_total',
        jsonb_build_object('status', new.status, 'trigger', new.trigger, 'dry_run', new.dry_run::text), 1);
      select provider into idp from integrations where id = new.integration_id;
      idp := coalesce(idp, 'unknown');
      perform metric_count('dirsync_idp_requests_total', jsonb_build_object('provider', idp, 'kind', 'request'), metric_json_count(new.stats, 'requests'));
      perform metric_count('dirsync_idp_requests_total', jsonb_build_object('provider', idp, 'kind', 'retry'), metric_json_count(new.stats, 'retries'));
      perform metric_count('dirsync_idp_requests_total', jsonb_build_object('provider', idp, 'kind', 'rate_limited'), metric_json_count(new.stats, 'rateLimited'));
      if not new.dry_run then
        for kind in select jsonb_object_keys(coalesce(new.counts, '{}'::jsonb)) loop
          perform metric_count('dirsync_changes_applied_total', jsonb_build_object('kind', kind), metric_json_count(new.counts, kind));
        end loop;
        if jsonb_typeof(new.warnings) = 'array' then
          perform metric_count('dirsync_records_skipped_total', jsonb_build_object('provider', idp), jsonb_array_length(new.warnings));
        end if;
      end if;
      return null;
    end $$
  `.execute(db);
  await sql`
    create trigger runs_count_finished after update of status on runs for each row
    when (old.status in ('queued', 'running') and new.status in ('succeeded', 'failed', 'held'))
    execute function runs_count_finished()
  `.execute(db);
  await sql`
    create trigger runs_count_inserted_finished after insert on runs for each row
    when (new.status in ('succeeded', 'failed', 'held'))
    execute function runs_count_finished()
  `.execute(db);
  // Start from what is recorded.
  await sql`
    insert into metric_counters (name, labels, shard, value)
    select 'dirsync_runs_finished_total', jsonb_build_object('status', status, 'trigger', trigger, 'dry_run', dry_run::text), 0, count(*)
    from runs where status in ('succeeded', 'failed', 'held') group by status, trigger, dry_run
  `.execute(db);
  await sql`
    insert into metric_counters (name, labels, shard, value)
    select 'dirsync_changes_applied_total', jsonb_build_object('kind', k), 0, sum(metric_json_count(r.counts, k))
    from runs r, jsonb_object_keys(coalesce(r.counts, '{}'::jsonb)) k
    where r.status in ('succeeded', 'failed', 'held') and not r.dry_run group by k having sum(metric_json_count(r.counts, k)) > 0
  `.execute(db);
  await sql`
    insert into metric_counters (name, labels, shard, value)
    select 'dirsync_records_skipped_total', jsonb_build_object('provider', i.provider), 0, sum(jsonb_array_length(r.warnings))
    from runs r join integrations i on i.id = r.integration_id
    where r.status in ('succeeded', 'failed', 'held') and not r.dry_run and jsonb_typeof(r.warnings) = 'array'
    group by i.provider having sum(jsonb_array_length(r.warnings)) > 0
  `.execute(db);
  await sql`
    insert into metric_counters (name, labels, shard, value)
    select 'dirsync_idp_requests_total', jsonb_build_object('provider', provider, 'kind', kind), 0, n
    from (
      select i.provider, x.kind, sum(metric_json_count(r.stats, x.key)) as n
      from runs r join integrations i on i.id = r.integration_id,
        (values ('request', 'requests'), ('retry', 'retries'), ('rate_limited', 'rateLimited')) as x (kind, key)
      where r.status in ('succeeded', 'failed', 'held') group by i.provider, x.kind
    ) totals where n > 0
  `.execute(db);
  await sql`
    insert into metric_counters (name, labels, shard, value)
    select 'dirsync_webhook_deliveries_total', jsonb_build_object('source', source, 'outcome', outcome), 0, count(*)
    from webhook_deliveries group by source, outcome
  `.execute(db);

  await sql`
    create index runs_last_finished_idx on runs (integration_id, finished_at desc)
    where status in ('succeeded', 'failed', 'held') and not dry_run
  `.execute(db);
  await sql`create index runs_last_succeeded_idx on runs (integration_id, finished_at desc) where status = 'succeeded' and not dry_run`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop index runs_last_succeeded_idx`.execute(db);
  await sql`drop index runs_last_finished_idx`.execute(db);
  await sql`drop trigger runs_count_inserted_finished on runs`.execute(db);
  await sql`drop trigger runs_count_finished on runs`.execute(db);
  await sql`drop function runs_count_finished()`.execute(db);
  await sql`drop function metric_json_count(jsonb, text)`.execute(db);
  await sql`drop function metric_count(text, jsonb, bigint)`.execute(db);
  await sql`drop table metric_counters`.execute(db);
}
