import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Events outlive the runs that made them, and cost less to write:
 *
 * - An applied change is an event the host app may not have received yet, so deleting an
 *   integration (which deletes its runs) must not take its events along: `run_changes.run_id`
 *   no longer cascades from `runs`. IntegrationRepository.delete removes the runs' own log
 *   (planned, held, skipped rows) itself; applied rows stay until DIRSYNC_EVENT_RETENTION
 *   prunes them, keeping the run id they were written with. The deletion's own events (its
 *   groups and memberships removed) have no run: `run_id` is nullable for them.
 * - The notify trigger no longer collects a transition table (which copied every inserted
 *   row, 600k in a W100k initial sync, only to look for an applied one): it notifies once per
 *   statement. Postgres folds identical notifications of one transaction into one, and a
 *   follower woken by a statement that wrote no event reads nothing.
 */
export async function up(db: Db): Promise<void> {
  await sql`alter table run_changes drop constraint run_changes_run_id_fkey`.execute(db);
  await sql`alter table run_changes alter column run_id drop not null`.execute(db);
  await sql`drop trigger run_changes_notify on run_changes`.execute(db);
  await sql`
    create or replace function run_changes_notify() returns trigger language plpgsql as $$
    begin
      perform pg_notify('dirsync_events', '');
      return null;
    end $$
  `.execute(db);
  await sql`create trigger run_changes_notify after insert on run_changes for each statement execute function run_changes_notify()`.execute(db);
}

export async function down(db: Db): Promise<void> {
  await sql`drop trigger run_changes_notify on run_changes`.execute(db);
  await sql`
    create or replace function run_changes_notify() returns trigger language plpgsql as $$
    begin
      if exists (select 1 from inserted where state = 'applied') then
        perform pg_notify('dirsync_events', '');
      end if;
      return null;
    end $$
  `.execute(db);
  await sql`
    create trigger run_changes_notify after insert on run_changes
    referencing new table as inserted for each statement execute function run_changes_notify()
  `.execute(db);
  await sql`delete from run_changes c where c.run_id is null or not exists (select 1 from runs r where r.id = c.run_id)`.execute(db);
  await sql`alter table run_changes alter column run_id set not null`.execute(db);
  await sql`alter table run_changes add constraint run_changes_run_id_fkey foreign key (run_id) references runs (id) on delete cascade`.execute(db);
}
