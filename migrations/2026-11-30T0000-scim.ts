import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * SCIM integrations: the IdP pushes to dirsync instead of being read. Such an integration has
 * no base URL and no credentials of its own; it has a bearer token (hashed, with a grace period
 * after rotation, like webhook secrets). What the IdP pushed is kept verbatim in `scim_users`,
 * `scim_groups` and `scim_group_members`: the integration's snapshot, read by runs as a pull
 * reads the IdP.
 */
export async function up(db: Db): Promise<void> {
  await sql`alter table integrations drop constraint integrations_provider_check`.execute(db);
  await sql`alter table integrations add constraint integrations_provider_check check (provider in ('okta', 'authentik', 'scim'))`.execute(db);
  await sql`alter table integrations alter column base_url drop not null`.execute(db);
  await sql`alter table integrations alter column credentials drop not null`.execute(db);
  await db.schema
    .alterTable('integrations')
    .addColumn('scim_token_hash', 'text')
    .addColumn('scim_token_previous_hash', 'text')
    .addColumn('scim_token_previous_expires_at', 'timestamptz')
    .execute();
  // A pulled integration reaches its IdP; a pushed one is reached: exactly one of the two.
  await sql`
    alter table integrations add constraint integrations_reach check (
      case when provider = 'scim'
        then base_url is null and credentials is null and scim_token_hash is not null
        else base_url is not null and credentials is not null and scim_token_hash is null end)
  `.execute(db);
  await sql`
    alter table integrations add constraint scim_token_previous_expires
    check ((scim_token_previous_hash is null) = (scim_token_previous_expires_at is null))
  `.execute(db);

  await sql`alter table runs drop constraint runs_trigger_check`.execute(db);
  await sql`alter table runs add constraint runs_trigger_check check (trigger in ('schedule', 'webhook', 'manual', 'scim'))`.execute(db);
  // Pushed removals are guarded over a sliding window: the removals applied lately, found fast.
  await sql`
    create index run_changes_removals_idx on run_changes (created_at)
    where state = 'applied' and kind in ('user.deprovisioned', 'group.deleted', 'membership.removed')
  `.execute(db);

  await sql`
    create table scim_users (
      id uuid primary key default gen_random_uuid(),
      integration_id uuid not null references integrations (id) on delete cascade,
      user_name text not null,
      user_name_key text not null generated always as (lower(normalize(user_name, NFC))) stored,
      external_id text,
      active boolean not null,
      resource jsonb not null,
      fingerprint text,
      version bigint not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint scim_users_user_name_key unique (integration_id, user_name_key)
    )
  `.execute(db);
  await sql`create index scim_users_external_id_idx on scim_users (integration_id, external_id)`.execute(db);
  await sql`create index scim_users_order_idx on scim_users (integration_id, created_at, id)`.execute(db);

  await sql`
    create table scim_groups (
      id uuid primary key default gen_random_uuid(),
      integration_id uuid not null references integrations (id) on delete cascade,
      display_name text not null,
      external_id text,
      resource jsonb not null,
      version bigint not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )
  `.execute(db);
  await sql`create index scim_groups_display_name_idx on scim_groups (integration_id, lower(display_name))`.execute(db);
  await sql`create index scim_groups_external_id_idx on scim_groups (integration_id, external_id)`.execute(db);
  await sql`create index scim_groups_order_idx on scim_groups (integration_id, created_at, id)`.execute(db);

  await sql`
    create table scim_group_members (
      group_id uuid not null references scim_groups (id) on delete cascade,
      user_id uuid not null references scim_users (id) on delete cascade,
      primary key (group_id, user_id)
    )
  `.execute(db);
  await sql`create index scim_group_members_user_idx on scim_group_members (user_id)`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop table scim_group_members`.execute(db);
  await sql`drop table scim_groups`.execute(db);
  await sql`drop table scim_users`.execute(db);
  await sql`drop index run_changes_removals_idx`.execute(db);
  await sql`delete from runs where trigger = 'scim'`.execute(db);
  await sql`alter table runs drop constraint runs_trigger_check`.execute(db);
  await sql`alter table runs add constraint runs_trigger_check check (trigger in ('schedule', 'webhook', 'manual'))`.execute(db);
  await sql`delete from integrations where provider = 'scim'`.execute(db);
  await sql`alter table integrations drop constraint scim_token_previous_expires`.execute(db);
  await sql`alter table integrations drop constraint integrations_reach`.execute(db);
  await db.schema
    .alterTable('integrations')
    .dropColumn('scim_token_hash')
    .dropColumn('scim_token_previous_hash')
    .dropColumn('scim_token_previous_expires_at')
    .execute();
  await sql`alter table integrations alter column base_url set not null`.execute(db);
  await sql`alter table integrations alter column credentials set not null`.execute(db);
  await sql`alter table integrations drop constraint integrations_provider_check`.execute(db);
  await sql`alter table integrations add constraint integrations_provider_check check (provider in ('okta', 'authentik'))`.execute(db);
}
