import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Targeted and incremental runs (issue #18, SPEC "Run"):
 *
 * - `runs.lane`: `full` runs (and dry runs, approvals, scim runs) and `quick` runs (targeted and
 *   incremental runs of a pulled integration) queue and run side by side, one of each per
 *   integration, so an event is applied in seconds while a full run reads for minutes.
 * - `runs.read_at`: when this run's read of the IdP began, by the database's clock. Declared
 *   before the run loads the tenant's state; its writes of a subject someone read later are dropped.
 * - `run_subjects`: what a targeted run reads (user ids, logins, group ids); triggers that join a
 *   queued run add theirs.
 * - `subject_reads`: per subject and run, when that run's read of it ended (`all` for a full
 *   read: every subject), declared before the run loads the tenant's state (src/runs/read-stamps.ts).
 * - `integrations.full_every_ms`: how often the schedule runs a full run instead of an
 *   incremental one; `integrations.feed_cursor`: where the IdP's change feed is read from next.
 * - `integrations_reach`: an okta or authentik integration may hold a SCIM token too (`--scim`:
 *   pushes read back through the API).
 */
export async function up(db: Db): Promise<void> {
  await sql`alter table runs add column lane text not null default 'full' check (lane in ('full', 'quick'))`.execute(db);
  await sql`alter table runs add column read_at timestamptz`.execute(db);
  await sql`drop index runs_one_queued`.execute(db);
  await sql`create unique index runs_one_queued on runs (integration_id, lane)
            where status = 'queued' and dry_run = false and approves_run_id is null`.execute(db);
  await sql`drop index runs_one_running`.execute(db);
  await sql`create unique index runs_one_running on runs (integration_id, lane) where status = 'running'`.execute(db);
  await sql`
    create table run_subjects (
      run_id uuid not null references runs (id) on delete cascade,
      kind text not null check (kind in ('user', 'login', 'group')),
      name text not null,
      primary key (run_id, kind, name)
    )`.execute(db);
  await sql`
    create table subject_reads (
      integration_id uuid not null references integrations (id) on delete cascade,
      kind text not null check (kind in ('user', 'group', 'all')),
      external_id text not null,
      run_id uuid not null references runs (id) on delete cascade,
      read_at timestamptz not null,
      primary key (integration_id, kind, external_id, run_id)
    )`.execute(db);
  await sql`create index subject_reads_recent_idx on subject_reads (integration_id, read_at)`.execute(db);
  await sql`create index subject_reads_run_idx on subject_reads (run_id)`.execute(db);
  await sql`alter table integrations add column full_every_ms bigint`.execute(db);
  await sql`alter table integrations add column feed_cursor text`.execute(db);
  await sql`alter table integrations drop constraint integrations_reach`.execute(db);
  await sql`
    alter table integrations add constraint integrations_reach check (
      case when provider = 'scim'
        then base_url is null and credentials is null and scim_token_hash is not null
        else base_url is not null and credentials is not null end)
  `.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`update integrations set scim_token_hash = null, scim_token_previous_hash = null, scim_token_previous_expires_at = null where provider <> 'scim'`.execute(db);
  await sql`alter table integrations drop constraint integrations_reach`.execute(db);
  await sql`
    alter table integrations add constraint integrations_reach check (
      case when provider = 'scim'
        then base_url is null and credentials is null and scim_token_hash is not null
        else base_url is not null and credentials is not null and scim_token_hash is null end)
  `.execute(db);
  await sql`alter table integrations drop column feed_cursor, drop column full_every_ms`.execute(db);
  await sql`drop table subject_reads`.execute(db);
  await sql`drop table run_subjects`.execute(db);
  await sql`delete from runs where lane = 'quick' and status in ('queued', 'running')`.execute(db);
  await sql`drop index runs_one_running`.execute(db);
  await sql`create unique index runs_one_running on runs (integration_id) where status = 'running'`.execute(db);
  await sql`drop index runs_one_queued`.execute(db);
  await sql`create unique index runs_one_queued on runs (integration_id)
            where status = 'queued' and dry_run = false and approves_run_id is null`.execute(db);
  await sql`alter table runs drop column read_at, drop column lane`.execute(db);
}
