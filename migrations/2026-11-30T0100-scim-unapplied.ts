import { type Kysely, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

/**
 * Targeted runs for pushes (SPEC "Run": `targeted`, named users or groups: a push).
 *
 * `runs.mode` records what a run read: `full` (the whole scope), `incremental` or `targeted`.
 *
 * `scim_unapplied` names the pushed resources written since a run last applied them: one row
 * per write, added by triggers in the transaction of the write itself, so no writer can forget
 * one and none is seen before its write commits. A targeted run reads these rows, reads and
 * applies those resources alone, then deletes exactly the rows it read (never "up to a seq":
 * a write that commits late with a lower seq must still be seen). The triggers skip a delete
 * cascading from the integration's own deletion.
 */
export async function up(db: Db): Promise<void> {
  await db.schema.alterTable('runs').addColumn('mode', 'text', (c) => c.notNull().defaultTo('full')).execute();
  await sql`alter table runs add constraint runs_mode_check check (mode in ('full', 'incremental', 'targeted'))`.execute(db);

  await sql`
    create table scim_unapplied (
      seq bigserial primary key,
      integration_id uuid not null references integrations (id) on delete cascade,
      resource_type text not null check (resource_type in ('User', 'Group')),
      resource_id uuid not null
    )
  `.execute(db);
  await sql`create index scim_unapplied_integration_idx on scim_unapplied (integration_id, seq)`.execute(db);
  await sql`
    create function scim_mark_unapplied() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' then
        insert into scim_unapplied (integration_id, resource_type, resource_id)
          select old.integration_id, tg_argv[0], old.id
          where exists (select 1 from integrations where id = old.integration_id);
        return old;
      end if;
      insert into scim_unapplied (integration_id, resource_type, resource_id) values (new.integration_id, tg_argv[0], new.id);
      return new;
    end $$
  `.execute(db);
  for (const [table, type] of [
    ['scim_users', 'User'],
    ['scim_groups', 'Group'],
  ] as const) {
    await sql`
      create trigger ${sql.raw(`${table}_unapplied_write`)} after insert or delete on ${sql.table(table)}
      for each row execute function scim_mark_unapplied(${sql.lit(type)})
    `.execute(db);
    // Every write bumps the version; a run repairing a fingerprint does not, and is no change.
    await sql`
      create trigger ${sql.raw(`${table}_unapplied_update`)} after update on ${sql.table(table)}
      for each row when (old.version is distinct from new.version) execute function scim_mark_unapplied(${sql.lit(type)})
    `.execute(db);
  }

  // What was pushed before this migration and not yet applied (or not known to be) is named
  // once, so the first targeted run takes it.
  await sql`
    insert into scim_unapplied (integration_id, resource_type, resource_id)
    select s.integration_id, 'User', s.id from scim_users s
    where not exists (select 1 from accounts a where a.integration_id = s.integration_id and a.external_id = s.id::text
                        and a.fingerprint = s.fingerprint and a.active = s.active and a.user_name = s.user_name)
    union all
    select a.integration_id, 'User', a.external_id::uuid from accounts a join integrations i on i.id = a.integration_id
    where i.provider = 'scim' and not exists (select 1 from scim_users s where s.integration_id = a.integration_id and s.id::text = a.external_id)
    union all
    select g.integration_id, 'Group', g.id from scim_groups g
    union all
    select g.integration_id, 'Group', g.external_id::uuid from groups g join integrations i on i.id = g.integration_id
    where i.provider = 'scim' and not exists (select 1 from scim_groups s where s.integration_id = g.integration_id and s.id::text = g.external_id)
  `.execute(db);
}

export async function down(db: Db): Promise<void> {
  for (const table of ['scim_users', 'scim_groups']) {
    await sql`drop trigger ${sql.raw(`${table}_unapplied_write`)} on ${sql.table(table)}`.execute(db);
    await sql`drop trigger ${sql.raw(`${table}_unapplied_update`)} on ${sql.table(table)}`.execute(db);
  }
  await sql`drop function scim_mark_unapplied()`.execute(db);
  await sql`drop table scim_unapplied`.execute(db);
  await db.schema.alterTable('runs').dropColumn('mode').execute();
}
