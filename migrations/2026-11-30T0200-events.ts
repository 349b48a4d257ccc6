import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Events for the host app (SPEC "Events"): the applied change log is the feed. Each applied
 * row of `run_changes` is one event, written in the transaction of the change it describes;
 * the columns added here make it readable as a feed:
 *
 * - `tenant_id`, `integration_id`: whose change it is, without joins. One index serves every
 *   reader, in feed order; a tenant's reader filters it (a second index per tenant would cost
 *   every change of a 600k-change initial sync another index entry).
 * - `txid`: the id of the transaction that wrote the row (`pg_current_xact_id()`). Readers
 *   order events by (txid, id) and take only rows whose transaction is older than every
 *   transaction of this database still running (EventRepository's HORIZON): such a
 *   transaction has ended, so no row can later appear before a cursor already handed out.
 *   That is the visibility-horizon answer to the outbox trap (a serial id taken by a
 *   transaction that commits after a later id was read). Rows written before this migration
 *   share its txid, in id order.
 *
 * A statement trigger notifies `dirsync_events` when applied rows are inserted (delivered at
 * commit), so followers wake at once instead of polling.
 */
export async function up(db: Db): Promise<void> {
  await sql`alter table run_changes add column tenant_id uuid, add column integration_id uuid, add column txid xid8`.execute(db);
  await sql`
    update run_changes c set tenant_id = i.tenant_id, integration_id = i.id, txid = case when c.state = 'applied' then pg_current_xact_id() end
    from runs r join integrations i on i.id = r.integration_id
    where r.id = c.run_id
  `.execute(db);
  await sql`alter table run_changes alter column txid set default pg_current_xact_id()`.execute(db);
  await sql`create index run_changes_feed_idx on run_changes (txid, id) where state = 'applied'`.execute(db);
  await sql`
    create function run_changes_notify() returns trigger language plpgsql as $$
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
}

export async function down(db: Db): Promise<void> {
  await sql`drop trigger run_changes_notify on run_changes`.execute(db);
  await sql`drop function run_changes_notify()`.execute(db);
  await sql`drop index run_changes_feed_idx`.execute(db);
  await sql`alter table run_changes drop column txid, drop column integration_id, drop column tenant_id`.execute(db);
}
