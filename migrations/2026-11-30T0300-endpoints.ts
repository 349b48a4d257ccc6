import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * The host app's event endpoints and what was delivered to them (SPEC `dirsync endpoint ...`).
 *
 * An endpoint has a signing secret (Standard Webhooks `whsec_...`), sealed with the
 * encryption key as integration credentials are, since signing needs it back; during a
 * rotation's grace the previous one signs too. `cursor_*` is how far the endpoint has been
 * delivered (the feed's (txid, id) order); `failing_since` when its current failure began
 * (an endpoint failing for 3 days is disabled with `disabled_reason`).
 *
 * `event_deliveries` is one row per event sent (or being retried) to an endpoint: attempts,
 * the last status code, error and a short excerpt of the answer, the next attempt's time.
 */
export async function up(db: Db): Promise<void> {
  await sql`
    create table event_endpoints (
      id uuid primary key default gen_random_uuid(),
      url text not null,
      tenant_id uuid references tenants (id) on delete cascade,
      types text[],
      secret bytea not null,
      previous_secret bytea,
      previous_secret_expires_at timestamptz,
      enabled boolean not null default true,
      disabled_reason text,
      cursor_txid xid8 not null,
      cursor_id bigint not null,
      failing_since timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint event_endpoints_previous_secret check ((previous_secret is null) = (previous_secret_expires_at is null))
    )
  `.execute(db);
  await sql`
    create table event_deliveries (
      id bigserial primary key,
      endpoint_id uuid not null references event_endpoints (id) on delete cascade,
      event_id bigint not null,
      event_cursor text not null,
      event_type text not null,
      status text not null check (status in ('retrying', 'delivered', 'failed')),
      attempts integer not null,
      last_status_code integer,
      last_error text,
      response_excerpt text,
      next_attempt_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint event_deliveries_once unique (endpoint_id, event_id)
    )
  `.execute(db);
  await sql`create index event_deliveries_recent_idx on event_deliveries (endpoint_id, updated_at desc)`.execute(db);
  // Retention prunes by age.
  await sql`create index event_deliveries_age_idx on event_deliveries (updated_at)`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop table event_deliveries`.execute(db);
  await sql`drop table event_endpoints`.execute(db);
}
